// Collecting garbage after big bodies in the file-writer process. A body of MiBs leaves several
// copies behind (ring chunks, the joined body, its encodings) that V8 would only collect once its
// heap had grown far past what is live. A full collection every MiB of big bodies keeps the
// process, which reconstructs and renders them, near what it really holds (figures in
// bench/README.md), at a cost of a few ms per collection; small-body traffic rarely triggers one.
// (The recorder only handles ring chunks of at most 16 KiB, which V8's scavenger takes cheaply.)

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gcFunction: (() => void) | undefined | null = null;

/** V8's gc(), made available at run time (the flag then a fresh context exposes it). */
function gc(): (() => void) | undefined {
  if (gcFunction === null) {
    try {
      setFlagsFromString('--expose-gc');
      gcFunction = runInNewContext('gc') as () => void;
    } catch {
      gcFunction = undefined; // then V8 collects on its own schedule, as usual
    }
  }
  return gcFunction;
}

/**
 * Bodies smaller than this are left to V8: their garbage dies young and the scavenger takes it
 * cheaply, while a full collection every 8 MiB of 1 KB bodies ran twice a second under load.
 */
const BIG_BODY = 64 * 1024;

export class BodyGarbageCollector {
  private bytes = 0;

  /**
   * Collects inside note(): its caller (the file-writer process) has just let go of the exchange,
   * and works in 50 ms slices that would otherwise pile up tens of MiB of garbage.
   */
  constructor(private readonly everyBytes: number) {}

  /** Body bytes just handled; once `everyBytes` of big bodies have passed, one collection. */
  note(bodyBytes: number): void {
    if (bodyBytes < BIG_BODY) return;
    this.bytes += bodyBytes;
    if (this.bytes < this.everyBytes) return;
    this.bytes = 0;
    gc()?.();
  }
}
