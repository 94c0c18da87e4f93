// HTTP Content-Encoding (gzip, br, deflate, zstd): recording undoes it so bodies are stored
// readable; the mock server and the sender apply it again to answer or send as recorded. How a
// body is stored in YAML is a different matter: src/format/stored-body.ts. Only node:zlib; no state.

import * as zlib from 'node:zlib';

export interface DecodedBody {
  /** Decoded bytes, or the input unchanged when decoding failed or an encoding is unknown. */
  body: Buffer;
  /** True when every listed encoding was undone (also true for no/identity encoding). */
  decoded: boolean;
  /** Why decoding failed, when it did. */
  error?: string;
}

/** Split a Content-Encoding value ("gzip, br") into lower-case codings in the order they were applied. */
export function parseContentEncoding(contentEncoding: string | undefined | null): string[] {
  if (!contentEncoding) return [];
  return contentEncoding
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '' && s !== 'identity');
}

// zstd exists in node:zlib only on newer Node lines; use it when present.
type SyncCodec = (buf: Buffer) => Buffer;
const zlibAny = zlib as unknown as Record<string, unknown>;
const zstdDecompress =
  typeof zlibAny.zstdDecompressSync === 'function' ? (zlibAny.zstdDecompressSync as SyncCodec) : undefined;
const zstdCompress =
  typeof zlibAny.zstdCompressSync === 'function' ? (zlibAny.zstdCompressSync as SyncCodec) : undefined;

function decodeOne(buf: Buffer, coding: string): Buffer {
  switch (coding) {
    case 'gzip':
    case 'x-gzip':
      // Lenient flush: accept bodies whose gzip trailer is missing, as browsers do.
      return zlib.gunzipSync(buf, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    case 'deflate':
      // RFC 9110 says zlib-wrapped, but many servers send raw deflate: try both.
      try {
        return zlib.inflateSync(buf);
      } catch {
        return zlib.inflateRawSync(buf);
      }
    case 'br':
      return zlib.brotliDecompressSync(buf);
    case 'zstd':
      if (zstdDecompress) return zstdDecompress(buf);
      throw new Error('zstd is not supported by this Node version');
    default:
      throw new Error(`unknown content-encoding "${coding}"`);
  }
}

/**
 * Undo a Content-Encoding. Codings are undone last-applied first ("gzip, br" = gzip then br).
 * All or nothing: if any layer fails, the original bytes come back with decoded=false.
 */
export function decodeContentEncoding(bytes: Buffer, contentEncoding: string | undefined | null): DecodedBody {
  const codings = parseContentEncoding(contentEncoding);
  if (codings.length === 0 || bytes.length === 0) return { body: bytes, decoded: true };
  let cur = bytes;
  try {
    for (let i = codings.length - 1; i >= 0; i--) cur = decodeOne(cur, codings[i]!);
  } catch (err) {
    return { body: bytes, decoded: false, error: err instanceof Error ? err.message : String(err) };
  }
  return { body: cur, decoded: true };
}

function encodeOne(buf: Buffer, coding: string): Buffer {
  switch (coding) {
    case 'gzip':
    case 'x-gzip':
      return zlib.gzipSync(buf);
    case 'deflate':
      return zlib.deflateSync(buf); // zlib-wrapped, as RFC 9110 specifies
    case 'br':
      return zlib.brotliCompressSync(buf);
    case 'zstd':
      if (zstdCompress) return zstdCompress(buf);
      return buf;
    default:
      // Unknown codings are passed through: the body was kept raw (bodyDecoded=false) in that case.
      return buf;
  }
}

/**
 * Apply a Content-Encoding to a decoded body, codings in the listed order. Unknown codings leave the
 * bytes unchanged (a body that could not be decoded was stored still encoded). An empty body stays empty.
 */
export function encodeContentEncoding(body: Buffer, contentEncoding: string | undefined | null): Buffer {
  const codings = parseContentEncoding(contentEncoding);
  if (codings.length === 0 || body.length === 0) return body;
  let cur = body;
  for (const c of codings) cur = encodeOne(cur, c);
  return cur;
}
