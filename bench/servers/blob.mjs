// Deterministic bodies shared by the blob server and the completeness/memory clients: printable
// text (64 characters then a newline) cut from one 4 MiB pseudo-random pool at an offset derived
// from the exchange id, so both ends can compute the same bytes and hash without sending them.
import { createHash } from 'node:crypto';

const POOL_SIZE = 4 * 1024 * 1024;
const ALPHA = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
export const pool = Buffer.alloc(POOL_SIZE);
{
  let x = 0x9e3779b9;
  for (let i = 0; i < POOL_SIZE; i++) {
    if (i % 65 === 64) {
      pool[i] = 10;
      continue;
    }
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    pool[i] = ALPHA.charCodeAt((x >>> 0) % ALPHA.length);
  }
}
export const MAX_BODY = 2 * 1024 * 1024;

export function body(id, size, salt = 0) {
  const off = ((id * 7919 + salt * 104729) % (POOL_SIZE - MAX_BODY - 1)) >>> 0;
  return pool.subarray(off, off + size);
}

export const sha = (b) => createHash('sha256').update(b).digest('hex');
