// The recorder's queue in front of the spool: captured records are kept as they are (no copy, no
// decoding) until FLUSH_MS has passed or FLUSH_BYTES are queued, then sealed into one encrypted
// frame and appended in one write. A write costs ~90 µs of the recorder's time on these machines,
// whatever its size, so many batches go in each, and the spool is never more than a moment behind
// the capture.

import type { OutputError } from '../errors.js';
import { outputError } from '../format/test-set-writer.js';
import type { SpoolCipher } from './cipher.js';
import { SpoolAppendError, type SpoolAppender } from './segments.js';

export const FLUSH_MS = 20;
export const FLUSH_BYTES = 1024 * 1024;

/** The part of SpoolAppender the queue uses. */
export type FrameAppender = Pick<SpoolAppender, 'append' | 'flush' | 'discard'>;

export class SpoolQueue {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  private spooled = 0;
  private notSpooled = 0;
  private firstError: OutputError | undefined;

  /** `dir` names where the spool is, in the error about it. */
  constructor(
    private readonly appender: FrameAppender,
    private readonly cipher: SpoolCipher,
    private readonly dir: string,
  ) {}

  /**
   * Queues captured records (whole ones, in the ring's format: CaptureOptions.onRecords), kept as
   * they are until they are written; they reach the spool within FLUSH_MS, once FLUSH_BYTES are
   * queued, or at flush(). Never throws: what cannot be spooled is counted (notSpooledBytes).
   */
  push(records: Buffer): void {
    if (records.length === 0) return;
    this.pending.push(records);
    this.pendingBytes += records.length;
    if (this.pendingBytes >= FLUSH_BYTES) this.flush();
    else this.flushTimer ??= setTimeout(() => this.flush(), FLUSH_MS).unref();
  }

  /** Writes the queued records to the spool, as one encrypted frame in one write. */
  flush(): void {
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    if (this.pending.length === 0) return;
    const batches = this.pending;
    const bytes = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    if (this.firstError) {
      // After the first failure (a full disk, mostly) nothing more is spooled: the files then hold
      // a prefix of the recording without holes, rather than whatever happened to fit later.
      this.notSpooled += bytes;
      return;
    }
    try {
      this.appender.append(this.cipher.seal(batches));
      this.appender.flush();
      this.spooled += bytes;
    } catch (err) {
      this.appender.discard();
      this.notSpooled += bytes;
      this.firstError ??= outputError(
        'captured traffic to the spool in',
        this.dir,
        err instanceof SpoolAppendError ? err.cause : err,
      );
    }
  }

  /** Captured bytes (unencrypted) in the spool. */
  spooledBytes(): number {
    return this.spooled;
  }

  /** Captured bytes that never reached the spool. */
  notSpooledBytes(): number {
    return this.notSpooled;
  }

  /** Why they did not: the first failed write. */
  error(): OutputError | undefined {
    return this.firstError;
  }
}
