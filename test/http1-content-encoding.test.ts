import { describe, expect, it } from 'vitest';
import * as zlib from 'node:zlib';
import {
  decodeContentEncoding,
  encodeContentEncoding,
  parseContentEncoding,
} from '../src/protocols/http1/content-encoding.js';

const text = Buffer.from('{"hello":"world","n":[1,2,3]}'.repeat(50));

describe('decodeContentEncoding', () => {
  it('passes identity and missing encodings through', () => {
    expect(decodeContentEncoding(text, undefined)).toEqual({ body: text, decoded: true });
    expect(decodeContentEncoding(text, 'identity')).toEqual({ body: text, decoded: true });
    expect(decodeContentEncoding(text, '')).toEqual({ body: text, decoded: true });
  });
  it('decodes gzip, x-gzip, br, zlib deflate and raw deflate', () => {
    expect(decodeContentEncoding(zlib.gzipSync(text), 'gzip').body.equals(text)).toBe(true);
    expect(decodeContentEncoding(zlib.gzipSync(text), 'X-GZIP').body.equals(text)).toBe(true);
    expect(decodeContentEncoding(zlib.brotliCompressSync(text), 'br').body.equals(text)).toBe(true);
    expect(decodeContentEncoding(zlib.deflateSync(text), 'deflate').body.equals(text)).toBe(true);
    expect(decodeContentEncoding(zlib.deflateRawSync(text), 'deflate').body.equals(text)).toBe(true);
  });
  it('undoes stacked encodings last-applied first', () => {
    const enc = zlib.brotliCompressSync(zlib.gzipSync(text)); // "gzip, br": gzip applied first
    const r = decodeContentEncoding(enc, 'gzip, br');
    expect(r.decoded).toBe(true);
    expect(r.body.equals(text)).toBe(true);
    // wrong order fails and returns the raw bytes
    const bad = decodeContentEncoding(enc, 'br, gzip');
    expect(bad.decoded).toBe(false);
    expect(bad.body).toBe(enc);
  });
  it('reports garbage and unknown encodings as not decoded, keeping raw bytes', () => {
    const r = decodeContentEncoding(Buffer.from('not gzip at all'), 'gzip');
    expect(r.decoded).toBe(false);
    expect(r.body.toString()).toBe('not gzip at all');
    expect(r.error).toBeTruthy();
    const u = decodeContentEncoding(text, 'compress');
    expect(u.decoded).toBe(false);
    expect(u.body).toBe(text);
  });
  it('treats an empty body as decoded', () => {
    expect(decodeContentEncoding(Buffer.alloc(0), 'gzip')).toEqual({ body: Buffer.alloc(0), decoded: true });
  });
});

describe('encodeContentEncoding', () => {
  it('round-trips through decodeContentEncoding for every known coding and stacks', () => {
    for (const ce of ['gzip', 'x-gzip', 'deflate', 'br', 'gzip, br', 'deflate, gzip', 'identity']) {
      const enc = encodeContentEncoding(text, ce);
      if (ce !== 'identity') expect(enc.equals(text)).toBe(false);
      const dec = decodeContentEncoding(enc, ce);
      expect(dec.decoded).toBe(true);
      expect(dec.body.equals(text)).toBe(true);
    }
  });
  it('produces standard formats other clients can read', () => {
    expect(zlib.gunzipSync(encodeContentEncoding(text, 'gzip')).equals(text)).toBe(true);
    expect(zlib.inflateSync(encodeContentEncoding(text, 'deflate')).equals(text)).toBe(true);
    expect(zlib.brotliDecompressSync(encodeContentEncoding(text, 'br')).equals(text)).toBe(true);
  });
  it('leaves unknown codings unchanged', () => {
    expect(encodeContentEncoding(text, 'compress')).toBe(text);
  });
  it('parses the header list', () => {
    expect(parseContentEncoding(' GZIP , identity,br ')).toEqual(['gzip', 'br']);
  });
});
