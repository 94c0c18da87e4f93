// Secrets at replay: the values behind {{ .secret.NAME }} come from the environment
// (TLSREC_SECRET_NAME) or the secrets file named in tlsrec.yaml, never from the test files. A
// test that needs a secret nobody supplied still runs (it sends the reference text); when it
// fails, the failure names the variable to set. Every report passes through scrub(), so a
// supplied value never reaches the terminal, JUnit, JSON or a diff: it reads `[secret NAME]`.

import { Writable } from 'node:stream';
import type { Config, TestSet } from '../format/types.js';
import { readSecretsFile } from '../format/secrets-file.js';
import { refsIn } from '../format/templates.js';

export const SECRET_ENV_PREFIX = 'TLSREC_SECRET_';

export function secretEnvName(name: string): string {
  return `${SECRET_ENV_PREFIX}${name}`;
}

/** Values shorter than this are not scrubbed from reports (they would mangle ordinary text). */
const MIN_SCRUBBED = 4;

export class SecretStore {
  private readonly values: Map<string, string>;
  /** The secrets file, for hints ("or add NAME to .tlsrec-secrets.yaml"). */
  readonly file: string | undefined;
  /** Supplied values, longest first (a value that contains another is replaced whole). */
  private readonly byLength: Array<[string, string]>;

  /** `alsoHidden`: values overridden (a file's value under an environment one) that reports still must not show. */
  constructor(values: Map<string, string>, file?: string, alsoHidden: Array<[string, string]> = []) {
    this.values = values;
    this.file = file;
    this.byLength = [...values, ...alsoHidden]
      .filter(([, v]) => v.length >= MIN_SCRUBBED)
      .sort((a, b) => b[1].length - a[1].length);
  }

  /** The secrets file's values, overridden by TLSREC_SECRET_<NAME> from `env`. */
  static load(config: Pick<Config, 'secretsFile'>, env: NodeJS.ProcessEnv = process.env): SecretStore {
    const fromFile = Object.entries(config.secretsFile ? readSecretsFile(config.secretsFile) : {});
    const values = new Map(fromFile);
    for (const [k, v] of Object.entries(env))
      if (k.startsWith(SECRET_ENV_PREFIX) && v !== undefined && k.length > SECRET_ENV_PREFIX.length)
        values.set(k.slice(SECRET_ENV_PREFIX.length), v);
    return new SecretStore(values, config.secretsFile, fromFile);
  }

  get(name: string): string | undefined {
    return this.values.get(name);
  }

  /** What to do about a missing secret, in one line. */
  hint(name: string): string {
    return `set ${secretEnvName(name)}${this.file ? ` or add ${name} to ${this.file}` : ''}`;
  }

  /**
   * Secrets that the requests of `sets` send (tests, and mocks' requests the app must match)
   * and nobody supplied, each with the tests that need it, in order of first use.
   */
  missing(sets: readonly TestSet[]): Map<string, string[]> {
    const out = new Map<string, string[]>();
    const need = (text: string, who: string): void => {
      for (const r of refsIn(text)) {
        if (r.kind !== 'secret' || this.values.has(r.name)) continue;
        const list = out.get(r.name) ?? [];
        if (!list.includes(who)) list.push(who);
        out.set(r.name, list);
      }
    };
    for (const set of sets) {
      for (const t of set.tests) {
        const who = `${set.name}/${t.name}`;
        need(t.request.url, who);
        for (const [, v] of t.request.headers) need(v, who);
        if (t.request.body.kind !== 'binary') need(t.request.body.bytes.toString('utf8'), who);
      }
    }
    return out;
  }

  /** `text` with supplied secret values shown as `[secret NAME]` (references stay as written: they hold no value). */
  scrub(text: string): string {
    let out = text;
    for (const [name, value] of this.byLength) if (out.includes(value)) out = out.split(value).join(`[secret ${name}]`);
    return out;
  }

  /**
   * A deep copy of plain report data with every string scrubbed. An object reached twice is copied
   * once, so data shared inside the report (a mock miss listed by its set and by its test) stays shared.
   */
  scrubDeep<T>(value: T, copies: Map<object, unknown> = new Map()): T {
    if (typeof value === 'string') return this.scrub(value) as T;
    if (value === null || typeof value !== 'object' || Buffer.isBuffer(value)) return value;
    const done = copies.get(value);
    if (done !== undefined) return done as T;
    if (Array.isArray(value)) {
      const out: unknown[] = [];
      copies.set(value, out);
      for (const v of value as unknown[]) out.push(this.scrubDeep(v, copies));
      return out as T;
    }
    const out: Record<string, unknown> = {};
    copies.set(value, out);
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = this.scrubDeep(v, copies);
    return out as T;
  }
}

/** `out` with every write scrubbed (the app's own output under --verbose arrives a line per write). */
export function scrubbingStream(out: NodeJS.WritableStream, secrets: SecretStore): NodeJS.WritableStream {
  return new Writable({
    write(chunk: Buffer | string, _enc, done): void {
      out.write(secrets.scrub(typeof chunk === 'string' ? chunk : chunk.toString('utf8')));
      done();
    },
  });
}
