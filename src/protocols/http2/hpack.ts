// HPACK (RFC 7541) decoding for one direction of one HTTP/2 connection: the dynamic table lives as
// long as the connection and changes with every header block, so blocks must be decoded in order
// and a lost block makes every later one undecodable.
//
// hpack.js (the HPACK code of the `spdy` server, no install scripts, no native code) is used for its
// primitive decoder (integers, Huffman strings) and its dynamic table (eviction, size updates);
// Node's own http2 has no standalone HPACK decoder. Its stream-based Decompressor is not used: the
// loop below is synchronous and stops at the first malformed representation with an Error.

import { createRequire } from 'node:module';
import type { HeaderList } from '../../model/exchange.js';

interface HpackPrimitiveDecoder {
  push(chunk: Buffer): void;
  isEmpty(): boolean;
  decodeBit(): number;
  decodeInt(): number;
  decodeStr(): number[];
}
interface HpackTable {
  lookup(index: number): { name: string; value: string; nameSize: number };
  add(name: string, value: string, nameSize: number, valueSize: number): void;
  updateSize(size: number): void;
  size: number;
  maxSize: number;
  protocolMaxSize: number;
}
interface HpackModule {
  decoder: { create(): HpackPrimitiveDecoder };
  table: { create(opts: { maxSize: number }): HpackTable };
  utils: { stringify(bytes: number[]): string };
}

const hpack = createRequire(import.meta.url)('hpack.js') as HpackModule;

/** The HTTP/2 default SETTINGS_HEADER_TABLE_SIZE. */
export const DEFAULT_TABLE_SIZE = 4096;

export class HpackDecoder {
  private readonly table: HpackTable;

  constructor(maxSize = DEFAULT_TABLE_SIZE) {
    this.table = hpack.table.create({ maxSize });
  }

  /** Bytes held by the dynamic table (entry sizes as RFC 7541 §4.1 counts them). */
  get tableSize(): number {
    return this.table.size;
  }

  /** Decode one complete header block (HEADERS/PUSH_PROMISE + CONTINUATION fragments joined). */
  decode(block: Buffer): HeaderList {
    const d = hpack.decoder.create();
    d.push(block);
    const out: HeaderList = [];
    const str = (): string => Buffer.from(d.decodeStr()).toString('latin1');
    while (!d.isEmpty()) {
      if (d.decodeBit()) {
        const e = this.table.lookup(d.decodeInt());
        out.push([e.name, e.value]);
        continue;
      }
      const incremental = d.decodeBit();
      if (!incremental && d.decodeBit()) {
        // dynamic table size update (§6.3)
        this.table.updateSize(d.decodeInt());
        continue;
      }
      if (!incremental) d.decodeBit(); // never-indexed flag: the value is recorded either way
      const index = d.decodeInt();
      let name: string;
      let nameSize: number;
      if (index === 0) {
        name = str();
        nameSize = Buffer.byteLength(name, 'latin1');
      } else {
        const e = this.table.lookup(index);
        name = e.name;
        nameSize = e.nameSize;
      }
      const value = str();
      if (incremental) this.table.add(name, value, nameSize, Buffer.byteLength(value, 'latin1'));
      out.push([name, value]);
    }
    // Header field values are octets; HTTP/2 peers send UTF-8 in practice (gRPC metadata, JSON).
    return out.map(([n, v]) => [n, Buffer.from(v, 'latin1').toString('utf8')]);
  }
}
