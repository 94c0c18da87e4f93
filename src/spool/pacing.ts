// When the file-writer process (file-writer-process.ts) may work while the recorded command runs.
// Pure: it is handed the clock and the spool's byte counts, so its decisions are tested without
// timing.
//
// Why the process holds back at all: on the 2-vCPU machines measured, any work on the other CPU
// slows the app, whatever its priority (an idle-class busy loop cost the bare server 16-34 % of its
// throughput; bench/README.md). The backlog waits on disk (the spool), so holding back costs time
// at the end, not memory.

/** What the file-writer process does in its next turn. */
export type FileWriterMode =
  /** Traffic arrives fast (a load test): do nothing until the command ends or the backlog is large. */
  | 'wait'
  /** Light traffic: a short slice of work, then a gap, so files appear as the recording goes on. */
  | 'paced'
  /** The command has ended, or the spool is far behind: work without pause. */
  | 'full';

export interface PacingSettings {
  /** Above this rate of spool growth the process waits. */
  underLoadBytesPerS: number;
  /** The rate is measured over windows of this length. */
  windowMs: number;
  /** With more than this in the spool, the process works without pause even under load. */
  behindBytes: number;
}

export const DEFAULT_PACING: PacingSettings = {
  underLoadBytesPerS: 1024 * 1024,
  // Short, and the flip to 'wait' happens as soon as a window's quota has arrived: with a 1 s
  // window the process took 11-28 % of a CPU during a bare-server load test.
  windowMs: 250,
  behindBytes: 64 * 1024 * 1024,
};

export class FileWriterPacing {
  private mark: { at: number; arrived: number } | undefined;
  private underLoad = false;

  constructor(private readonly settings: PacingSettings = DEFAULT_PACING) {}

  /**
   * @param now a millisecond clock
   * @param arrivedBytes everything spooled so far (handled + backlog)
   * @param backlogBytes what the process has not handled yet
   * @param commandRunning false once the recorded command has ended (or the recorder is done)
   */
  mode(now: number, arrivedBytes: number, backlogBytes: number, commandRunning: boolean): FileWriterMode {
    this.measure(now, arrivedBytes);
    if (!commandRunning || backlogBytes >= this.settings.behindBytes) return 'full';
    return this.underLoad ? 'wait' : 'paced';
  }

  private measure(now: number, arrived: number): void {
    if (!this.mark) {
      this.mark = { at: now, arrived };
      return;
    }
    const { windowMs, underLoadBytesPerS } = this.settings;
    const quota = (underLoadBytesPerS * windowMs) / 1000;
    const elapsed = now - this.mark.at;
    if (elapsed >= windowMs) {
      // The window that ended decides; spread over its real length (ticks come late under load).
      this.underLoad = ((arrived - this.mark.arrived) * 1000) / elapsed > underLoadBytesPerS;
      this.mark = { at: now, arrived };
    } else if (arrived - this.mark.arrived > quota) {
      // A whole window's quota already: under load now, not at the window's end.
      this.underLoad = true;
    }
  }
}
