// How bodies are stored in `body` (+ `body_encoding`) and read back into a BodyValue.
// Writer and reader share these rules, so every byte written comes back, except insignificant
// whitespace in JSON bodies (stored pretty, read back minified; see json.ts).

import { looksLikeJson, minifyJson, prettyJson } from './json.js';
import type { BodyValue } from './types.js';

export interface StoredBody {
  body: string;
  body_encoding?: 'base64';
}

const BINARY_TYPES = [
  /^image\//,
  /^audio\//,
  /^video\//,
  /^font\//,
  /^application\/(octet-stream|pdf|zip|gzip|x-gzip|x-tar|x-7z-compressed|wasm|x-protobuf|protobuf|vnd\.google\.protobuf|grpc.*|msgpack|x-msgpack|cbor)$/,
];

export function isBinaryContentType(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const mt = contentType.split(';', 1)[0]!.trim().toLowerCase();
  if (mt === 'image/svg+xml') return false;
  return BINARY_TYPES.some((re) => re.test(mt));
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The text of a buffer when it is valid UTF-8 without NUL bytes (those read badly in YAML). */
function asText(bytes: Buffer): string | undefined {
  if (bytes.includes(0)) return undefined;
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** Base64 in 76-character lines, so a block scalar stays narrow. */
function wrappedBase64(bytes: Buffer): string {
  const b64 = bytes.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 76) lines.push(b64.slice(i, i + 76));
  return lines.join('\n') + '\n';
}

/** Would encodeBody store these bytes as base64? (Without formatting the text.) */
export function storedAsBase64(bytes: Buffer, contentType: string | undefined): boolean {
  return bytes.length > 0 && (isBinaryContentType(contentType) || asText(bytes) === undefined);
}

export function encodeBody(bytes: Buffer, contentType: string | undefined): StoredBody {
  if (bytes.length === 0) return { body: '' };
  const text = isBinaryContentType(contentType) ? undefined : asText(bytes);
  if (text === undefined) return { body: wrappedBase64(bytes), body_encoding: 'base64' };
  // A final newline (Go's json.Encoder writes one) is kept: `body: |` rather than `body: |-`.
  if (looksLikeJson(text, contentType)) return { body: prettyJson(text) + (text.endsWith('\n') ? '\n' : '') };
  return { body: text };
}

export function isValidBase64(text: string): boolean {
  const s = text.replace(/\s+/g, '');
  return /^[A-Za-z0-9+/]*={0,2}$/.test(s) && s.length % 4 === 0;
}

export function decodeBody(body: string, encoding: 'base64' | undefined, contentType: string | undefined): BodyValue {
  if (encoding === 'base64') {
    const bytes = Buffer.from(body.replace(/\s+/g, ''), 'base64');
    return { bytes, kind: bytes.length === 0 ? 'empty' : 'binary' };
  }
  if (body === '') return { bytes: Buffer.alloc(0), kind: 'empty' };
  if (isBinaryContentType(contentType)) return { bytes: Buffer.from(body, 'utf8'), kind: 'binary' };
  if (looksLikeJson(body, contentType)) {
    const min = minifyJson(body) + (body.endsWith('\n') ? '\n' : '');
    return { bytes: Buffer.from(min, 'utf8'), kind: 'json' };
  }
  return { bytes: Buffer.from(body, 'utf8'), kind: 'text' };
}
