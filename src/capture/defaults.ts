// Defaults of the capture that the command line shows and the capture applies: one place for both.

import { RING_MAX_ENTRIES } from './record-layout.js';

/** Kernel ring buffer size (`record --ringbuf`): the size bpf/capture.bpf.c declares for the ring. */
export const DEFAULT_RINGBUF_BYTES = RING_MAX_ENTRIES.events;

/**
 * Captured payload waiting in tlsrec's memory above which the command is paused (`record
 * --max-backlog`). 64 MiB cost ~60 MB more memory at peak and gave no more throughput (bench/README.md).
 */
export const DEFAULT_MAX_BACKLOG_BYTES = 16 << 20;
