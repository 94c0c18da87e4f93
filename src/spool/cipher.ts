// The spool between the recorder and its file-writer process holds captured plaintext: request and
// response bytes before anything is redacted. It is encrypted with a key that exists only in the
// memory of those two processes (the file-writer process gets it in its environment, readable by
// its owner only), so that what reaches the disk before the test files, or is left behind by a
// crash, never holds a secret header or body in the clear. AES-256-CTR from node:crypto; each frame's IV is a
// random prefix and the frame's number, so no two frames share counter blocks.

import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const ALGORITHM = 'aes-256-ctr';
const KEY_BYTES = 32;
const IV_BYTES = 16;

export class SpoolCipher {
  /** Bytes a sealed frame has more than its plaintext. */
  static readonly IV_BYTES = IV_BYTES;

  private readonly ivPrefix = randomBytes(8);
  private frames = 0;

  private constructor(private readonly key: Buffer) {}

  /** A new random key. */
  static generate(): SpoolCipher {
    return new SpoolCipher(randomBytes(KEY_BYTES));
  }

  /** The key given by keyHex(); throws on anything else. */
  static fromHex(hex: string): SpoolCipher {
    if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error('the spool key is missing or malformed');
    return new SpoolCipher(Buffer.from(hex, 'hex'));
  }

  keyHex(): string {
    return this.key.toString('hex');
  }

  /**
   * The frame for the concatenation of `parts`: its IV, then the ciphertext of each part (as long
   * as the part). The IV is the prefix, the frame number (32 bits) and a zero block counter: a
   * frame may be up to 2^32 blocks (64 GiB) before its counter would reach the next frame's IV.
   */
  seal(parts: readonly Buffer[]): Buffer[] {
    const iv = Buffer.alloc(IV_BYTES);
    this.ivPrefix.copy(iv, 0);
    iv.writeUInt32BE(this.frames++ >>> 0, 8);
    const cipher = createCipheriv(ALGORITHM, this.key, iv);
    return [iv, ...parts.map((p) => cipher.update(p))]; // CTR: final() adds nothing
  }

  /** The plaintext of a frame made by seal(). */
  open(frame: Buffer): Buffer {
    if (frame.length < IV_BYTES)
      throw new Error(`an encrypted spool frame of ${frame.length} bytes is shorter than its IV`);
    return createDecipheriv(ALGORITHM, this.key, frame.subarray(0, IV_BYTES)).update(frame.subarray(IV_BYTES));
  }
}
