// Buffers compared with Buffer.equals in expect(): deep equality of a 1 MiB buffer element by
// element takes seconds. Call once at the top of a test file.

import { expect } from 'vitest';

export function compareBuffersFast(): void {
  expect.addEqualityTesters([
    (a: unknown, b: unknown): boolean | undefined => {
      const ba = Buffer.isBuffer(a);
      const bb = Buffer.isBuffer(b);
      if (!ba && !bb) return undefined;
      return ba && bb && a.equals(b);
    },
  ]);
}
