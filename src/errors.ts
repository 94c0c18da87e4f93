// One base error class; each subclass has a stable code, names the stage that failed, the cause and
// what to try next. The CLI's single exit point (src/cli.ts) maps them to exit codes; user errors
// are printed as one message, never as a stack trace.

/** 0 passed, 1 a test failed, 2 bad usage or input, 3 environment or app; 130/143 interrupted by SIGINT/SIGTERM. */
export type ExitCode = 0 | 1 | 2 | 3 | 130 | 143;

export interface TlsrecErrorOptions {
  /** Pipeline stage that failed: "load bpf", "attach uprobe", "read tests", "start app", ... */
  stage: string;
  /** What to do next, shown on its own line. */
  hint?: string;
  /** Long detail (a verifier log, a child's output) shown with --verbose or when useful. */
  detail?: string;
  cause?: unknown;
}

export abstract class TlsrecError extends Error {
  abstract readonly code: string;
  abstract readonly exitCode: ExitCode;
  readonly stage: string;
  readonly hint: string | undefined;
  readonly detail: string | undefined;

  constructor(message: string, opts: TlsrecErrorOptions) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.stage = opts.stage;
    this.hint = opts.hint;
    this.detail = opts.detail;
  }
}

/** Bad command line: unknown option, missing command, conflicting flags. Exit 2. */
export class UsageError extends TlsrecError {
  readonly code = 'TLSREC_E_USAGE';
  readonly exitCode = 2;
}

/** A file the user gave or edited is broken (YAML syntax, schema). Exit 2. */
export class InputFileError extends TlsrecError {
  readonly code = 'TLSREC_E_INPUT';
  readonly exitCode = 2;
  /** Every problem found, each already formatted as `file:line:column: message`. */
  readonly problems: string[];
  constructor(message: string, problems: string[], opts: TlsrecErrorOptions) {
    super(message, opts);
    this.problems = problems;
  }
}

/** Missing privileges or kernel features, libbpf missing, verifier rejection. Exit 3. */
export class EnvironmentError extends TlsrecError {
  readonly code: string;
  readonly exitCode = 3;
  constructor(message: string, opts: TlsrecErrorOptions & { code?: string }) {
    super(message, opts);
    this.code = opts.code ?? 'TLSREC_E_ENV';
  }
}

/** The app under test or the recorded command could not start, or died. Exit 3. */
export class AppError extends TlsrecError {
  readonly code = 'TLSREC_E_APP';
  readonly exitCode = 3;
}

/** Writing recordings or reports failed (disk full, permissions). Exit 3. */
export class OutputError extends TlsrecError {
  readonly code = 'TLSREC_E_OUTPUT';
  readonly exitCode = 3;
}

/**
 * A recording finished but is not whole: the kernel could not deliver some bytes (ring buffer
 * full). Everything complete was written; the exchanges the loss touched were not. Exit 3.
 */
export class RecordingLossError extends TlsrecError {
  readonly code = 'TLSREC_E_LOST';
  readonly exitCode = 3;
}

/** tlsrec was stopped by SIGINT or SIGTERM after cleaning up. Exits 130 or 143 like a shell would. */
export class InterruptedError extends TlsrecError {
  readonly code = 'TLSREC_E_INTERRUPTED';
  readonly exitCode: 130 | 143;
  constructor(
    readonly signal: NodeJS.Signals,
    stage: string,
    what = 'the app and its mocks were stopped',
  ) {
    super(`interrupted by ${signal}; ${what}`, { stage });
    this.exitCode = signal === 'SIGINT' ? 130 : 143;
  }
}

export function isTlsrecError(err: unknown): err is TlsrecError {
  return err instanceof TlsrecError;
}

/** Short text of any thrown value, for "cause" lines. */
export function causeText(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
