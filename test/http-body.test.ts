import { describe, expect, it } from 'vitest';
import * as zlib from 'node:zlib';
import { classifyBody, decodeBody, encodeBody, parseContentEncoding } from '../src/protocols/http1/content-encoding.js';

const text = Buffer.from('{"hello":"world","n":[1,2,3]}'.repeat(50));

describe('decodeBody', () => {
  it('passes identity and missing encodings through', () => {
    expect(decodeBody(text, undefined)).toEqual({ body: text, decoded: true });
    expect(decodeBody(text, 'identity')).toEqual({ body: text, decoded: true });
    expect(decodeBody(text, '')).toEqual({ body: text, decoded: true });
  });
  it('decodes gzip, x-gzip, br, zlib deflate and raw deflate', () => {
    expect(decodeBody(zlib.gzipSync(text), 'gzip').body.equals(text)).toBe(true);
    expect(decodeBody(zlib.gzipSync(text), 'X-GZIP').body.equals(text)).toBe(true);
    expect(decodeBody(zlib.brotliCompressSync(text), 'br').body.equals(text)).toBe(true);
    expect(decodeBody(zlib.deflateSync(text), 'deflate').body.equals(text)).toBe(true);
    expect(decodeBody(zlib.deflateRawSync(text), 'deflate').body.equals(text)).toBe(true);
  });
  it('undoes stacked encodings last-applied first', () => {
    const enc = zlib.brotliCompressSync(zlib.gzipSync(text)); // "gzip, br": gzip applied first
    const r = decodeBody(enc, 'gzip, br');
    expect(r.decoded).toBe(true);
    expect(r.body.equals(text)).toBe(true);
    // wrong order fails and returns the raw bytes
    const bad = decodeBody(enc, 'br, gzip');
    expect(bad.decoded).toBe(false);
    expect(bad.body).toBe(enc);
  });
  it('reports garbage and unknown encodings as not decoded, keeping raw bytes', () => {
    const r = decodeBody(Buffer.from('not gzip at all'), 'gzip');
    expect(r.decoded).toBe(false);
    expect(r.body.toString()).toBe('not gzip at all');
    expect(r.error).toBeTruthy();
    const u = decodeBody(text, 'compress');
    expect(u.decoded).toBe(false);
    expect(u.body).toBe(text);
  });
  it('treats an empty body as decoded', () => {
    expect(decodeBody(Buffer.alloc(0), 'gzip')).toEqual({ body: Buffer.alloc(0), decoded: true });
  });
});

describe('encodeBody', () => {
  it('round-trips through decodeBody for every known coding and stacks', () => {
    for (const ce of ['gzip', 'x-gzip', 'deflate', 'br', 'gzip, br', 'deflate, gzip', 'identity']) {
      const enc = encodeBody(text, ce);
      if (ce !== 'identity') expect(enc.equals(text)).toBe(false);
      const dec = decodeBody(enc, ce);
      expect(dec.decoded).toBe(true);
      expect(dec.body.equals(text)).toBe(true);
    }
  });
  it('produces standard formats other clients can read', () => {
    expect(zlib.gunzipSync(encodeBody(text, 'gzip')).equals(text)).toBe(true);
    expect(zlib.inflateSync(encodeBody(text, 'deflate')).equals(text)).toBe(true);
    expect(zlib.brotliDecompressSync(encodeBody(text, 'br')).equals(text)).toBe(true);
  });
  it('leaves unknown codings unchanged', () => {
    expect(encodeBody(text, 'compress')).toBe(text);
  });
  it('parses the header list', () => {
    expect(parseContentEncoding(' GZIP , identity,br ')).toEqual(['gzip', 'br']);
  });
});

describe('classifyBody', () => {
  it('classifies json, text, binary and empty', () => {
    expect(classifyBody(Buffer.from('{"a":1}'), 'application/json; charset=utf-8')).toBe('json');
    expect(classifyBody(Buffer.from('[1,2]'), 'application/problem+json')).toBe('json');
    expect(classifyBody(Buffer.from('{"a":1}'), undefined)).toBe('json');
    expect(classifyBody(Buffer.from('{not json'), 'application/json')).toBe('text');
    expect(classifyBody(Buffer.from('<html>héllo</html>\n'), 'text/html')).toBe('text');
    expect(classifyBody(Buffer.from('{"a":1}'), 'text/plain')).toBe('text');
    expect(classifyBody(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2]), 'image/png')).toBe('binary');
    expect(classifyBody(Buffer.from([0xff, 0xfe, 0x41]), 'text/plain')).toBe('binary');
    expect(classifyBody(Buffer.alloc(0), 'application/json')).toBe('empty');
  });
});
