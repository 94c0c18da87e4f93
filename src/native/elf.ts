// Minimal ELF64 reader: which of a set of function names a file defines (in .dynsym or .symtab), and
// at which file offset, because uprobes are placed by file offset. Reads only the headers, symbol
// tables and string tables (the node binary is ~100 MB; its .dynsym is a few MB).

import { closeSync, openSync, readSync } from 'node:fs';

const SHT_SYMTAB = 2;
const SHT_DYNSYM = 11;
const PT_LOAD = 1;
const STT_FUNC = 2;
const SHN_UNDEF = 0;

function readAt(fd: number, offset: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, offset + done);
    if (n === 0) break;
    done += n;
  }
  return done === length ? buf : buf.subarray(0, done);
}

interface Segment {
  vaddr: number;
  memsz: number;
  offset: number;
}

/**
 * File offsets of the functions in `names` that `path` defines. Names it does not define (or only
 * imports) are absent. Returns an empty map for files that are not little-endian ELF64.
 */
export function symbolOffsetsSync(path: string, names: readonly string[]): Map<string, number> {
  const found = new Map<string, number>();
  const fd = openSync(path, 'r');
  try {
    const eh = readAt(fd, 0, 64);
    if (eh.length < 64 || eh.readUInt32BE(0) !== 0x7f454c46 || eh[4] !== 2 || eh[5] !== 1) return found;
    const phoff = Number(eh.readBigUInt64LE(32));
    const shoff = Number(eh.readBigUInt64LE(40));
    const phentsize = eh.readUInt16LE(54);
    const phnum = eh.readUInt16LE(56);
    const shentsize = eh.readUInt16LE(58);
    const shnum = eh.readUInt16LE(60);

    const segments: Segment[] = [];
    const ph = readAt(fd, phoff, phentsize * phnum);
    for (let i = 0; i < phnum; i++) {
      const o = i * phentsize;
      if (ph.readUInt32LE(o) !== PT_LOAD) continue;
      segments.push({
        offset: Number(ph.readBigUInt64LE(o + 8)),
        vaddr: Number(ph.readBigUInt64LE(o + 16)),
        memsz: Number(ph.readBigUInt64LE(o + 40)),
      });
    }
    const sh = readAt(fd, shoff, shentsize * shnum);
    const section = (i: number) => {
      const o = i * shentsize;
      return {
        type: sh.readUInt32LE(o + 4),
        offset: Number(sh.readBigUInt64LE(o + 24)),
        size: Number(sh.readBigUInt64LE(o + 32)),
        link: sh.readUInt32LE(o + 40),
        entsize: Number(sh.readBigUInt64LE(o + 56)),
      };
    };
    const wanted = names.map((n) => Buffer.from(n + '\0'));

    // .dynsym first (exported functions, present even in stripped files), then .symtab.
    for (const type of [SHT_DYNSYM, SHT_SYMTAB]) {
      for (let i = 0; i < shnum && found.size < names.length; i++) {
        const s = section(i);
        if (s.type !== type || s.entsize < 24) continue;
        const str = section(s.link);
        const syms = readAt(fd, s.offset, s.size);
        const strtab = readAt(fd, str.offset, str.size);
        for (let o = 0; o + 24 <= syms.length; o += s.entsize) {
          if ((syms[o + 4]! & 0xf) !== STT_FUNC || syms.readUInt16LE(o + 6) === SHN_UNDEF) continue;
          const nameOff = syms.readUInt32LE(o);
          for (let w = 0; w < wanted.length; w++) {
            const want = wanted[w]!;
            if (strtab[nameOff] !== want[0] || found.has(names[w]!)) continue;
            if (strtab.compare(want, 0, want.length, nameOff, nameOff + want.length) !== 0) continue;
            const vaddr = Number(syms.readBigUInt64LE(o + 8));
            const seg = segments.find((g) => vaddr >= g.vaddr && vaddr < g.vaddr + g.memsz);
            if (seg && vaddr !== 0) found.set(names[w]!, vaddr - seg.vaddr + seg.offset);
          }
        }
      }
    }
    return found;
  } finally {
    closeSync(fd);
  }
}

/** The OpenSSL functions tlsrec probes. */
export const SSL_FUNCTIONS = ['SSL_read', 'SSL_write', 'SSL_read_ex', 'SSL_write_ex', 'SSL_free'] as const;
export type SslFunction = (typeof SSL_FUNCTIONS)[number];

/** SSL_* offsets of a file, or undefined when it is not OpenSSL-like (needs at least SSL_read and SSL_write). */
export function opensslOffsets(path: string): Map<SslFunction, number> | undefined {
  let m: Map<string, number>;
  try {
    m = symbolOffsetsSync(path, SSL_FUNCTIONS);
  } catch {
    return undefined; // unreadable or not a regular file
  }
  if (!m.has('SSL_read') || !m.has('SSL_write')) return undefined;
  return m as Map<SslFunction, number>;
}
