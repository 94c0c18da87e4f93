// The recorder's own thread yields to the app while the command runs: under contention the app's
// requests come first and the ring buffer and backlog absorb the delay. Measured with a 200 µs
// handler under wrk: throughput 0.88 -> 0.96 of no capture, p99 1.75x -> 1.36x (HTTPS server);
// 0.80 -> 0.97, p99 3.5x -> 1.03x (app calling an HTTPS upstream). When the backlog grows
// (CaptureSession's onBehind) it competes as an equal again, so the app slows a little instead of
// being paused for long. TLSREC_RECORDER_NICE (0-19) overrides the nice value, for measuring.

import { getPriority, setPriority } from 'node:os';

/** nice value of the recorder's main thread while the command runs and tlsrec keeps up. */
const RECORDER_NICE = 10;

export class RecorderPriority {
  private readonly nice: number;
  /** The nice value tlsrec was started with (`nice -n 5 tlsrec …`): never raised above that. */
  private readonly base = getPriority();
  private yielding = false;
  private behind = false;

  constructor(wanted = Number(process.env.TLSREC_RECORDER_NICE ?? RECORDER_NICE)) {
    this.nice = Math.max(this.base, Number.isInteger(wanted) ? Math.min(19, Math.max(0, wanted)) : RECORDER_NICE);
  }

  /** The command runs: yield to it. */
  startYielding(): void {
    this.yielding = true;
    this.apply();
  }

  /** The command has ended: the rest (draining, stopping) is best done quickly. */
  stopYielding(): void {
    this.yielding = false;
    this.apply();
  }

  /** The capture is falling behind (true) or has caught up (false). */
  setBehind(behind: boolean): void {
    this.behind = behind;
    this.apply();
  }

  private apply(): void {
    const nice = this.yielding && !this.behind ? this.nice : this.base;
    try {
      setPriority(nice); // this thread only (Linux); lowering it again needs CAP_SYS_NICE, which root has
    } catch {
      // stays where it was
    }
  }
}
