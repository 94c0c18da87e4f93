// Defaults of the capture that the command line shows and the capture applies: one place for both.

/** Kernel ring buffer size (`record --ringbuf`). */
export const DEFAULT_RINGBUF_BYTES = 64 << 20;

/** Captured payload waiting in tlsrec's memory above which the command is paused (`record --max-backlog`). */
export const DEFAULT_MAX_BACKLOG_BYTES = 16 << 20;
