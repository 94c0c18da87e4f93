// Deterministic bodies shared by the end-to-end tests and the fixture upstream.

import { createHash } from 'node:crypto';

/** Same generator as fixtures/upstream/server.mjs (a standalone app keeps its own copy), to know the expected bytes of /big. */
export function patternBytes(size: number): Buffer {
  const out = Buffer.alloc(size);
  let x = 0x12345678;
  for (let i = 0; i < size; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
