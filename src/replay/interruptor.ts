// SIGINT/SIGTERM during `tlsrec test`: the first signal aborts the current step (race() rejects with
// InterruptedError) so the run can stop the app and close mocks; a second signal kills the app's
// cgroups at once and exits.

import { InterruptedError } from '../errors.js';
import type { Cgroup } from '../native/cgroup.js';

export class Interruptor {
  private rejectFn: ((err: InterruptedError) => void) | undefined;
  readonly promise: Promise<never>;
  signal: NodeJS.Signals | undefined;
  /** Cgroups to kill synchronously if a second signal arrives. */
  readonly cgroups = new Set<Cgroup>();
  private readonly handlers: Array<[NodeJS.Signals, () => void]> = [];
  /** Aborted on the first signal, for steps that clean up after themselves (startApp). */
  readonly abort = new AbortController();

  constructor(install: boolean) {
    this.promise = new Promise<never>((_, reject) => {
      this.rejectFn = reject;
    });
    this.promise.catch(() => undefined); // handled by whoever races it; never "unhandled"
    if (!install) return;
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      const h = (): void => this.onSignal(sig);
      this.handlers.push([sig, h]);
      process.on(sig, h);
    }
  }

  private onSignal(sig: NodeJS.Signals): void {
    if (this.signal === undefined) {
      this.signal = sig;
      const err = new InterruptedError(sig, 'run tests');
      this.abort.abort(err);
      this.rejectFn?.(err);
      return;
    }
    for (const cg of this.cgroups) cg.signalAll('SIGKILL');
    process.exit(128 + (sig === 'SIGINT' ? 2 : 15));
  }

  /** Wait for `p`, unless a signal comes first. */
  race<T>(p: Promise<T>): Promise<T> {
    p.catch(() => undefined); // an abandoned step may still fail later
    return Promise.race([p, this.promise]);
  }

  /** Like race(), but whatever `p` still yields after an interruption is disposed of. */
  async raceOwned<T>(p: Promise<T>, dispose: (v: T) => Promise<void>): Promise<T> {
    try {
      return await this.race(p);
    } catch (err) {
      if (err instanceof InterruptedError) p.then(dispose, () => undefined).catch(() => undefined);
      throw err;
    }
  }

  check(): void {
    if (this.signal !== undefined) throw new InterruptedError(this.signal, 'run tests');
  }

  dispose(): void {
    for (const [sig, h] of this.handlers) process.off(sig, h);
  }
}
