// Reading `kind: gRPC` documents back (files.ts writes them): the call's headers, messages and
// trailers as replay needs them. A message is its `data_base64` bytes; a document without them
// (written by hand or by Keploy) or whose `decoded_data` was edited is re-encoded from the wire
// text (protowire.ts encodeWireText).

import { parseMockNoise } from '../../format/noise.js';
import type { DocProblem, DocRead } from '../../format/protocol-docs.js';
import type { HeaderList } from '../../model/exchange.js';
import { describeMessage, encodeWireText } from './protowire.js';

export interface GrpcSideRead {
  pseudoHeaders: HeaderList;
  headers: HeaderList;
  messages: Array<{ compressed: boolean; data: Buffer }>;
}

/** A gRPC mock or test as loaded. */
export interface GrpcCall {
  service: string;
  method: string;
  request: GrpcSideRead;
  response: GrpcSideRead & { trailers: HeaderList };
  /** Mocks: request message fields ignored when matching (`noise: {req: [body.2]}` -> "$.2"). */
  noisePaths?: string[];
}

type Obj = Readonly<Record<string, unknown>>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function headerList(v: unknown, path: Array<string | number>, problems: DocProblem[]): HeaderList {
  if (v === undefined || v === null) return [];
  if (!isObj(v)) {
    problems.push({ path, message: `${path.join('.')}: expected a map of header names to values` });
    return [];
  }
  return Object.entries(v).map(([k, val]) => [k, Array.isArray(val) ? val.map(String).join(', ') : String(val ?? '')]);
}

function headersDoc(
  v: unknown,
  path: Array<string | number>,
  problems: DocProblem[],
): { pseudo: HeaderList; ordinary: HeaderList } {
  if (!isObj(v)) {
    if (v !== undefined && v !== null)
      problems.push({ path, message: `${path.join('.')}: expected pseudo_headers and ordinary_headers` });
    return { pseudo: [], ordinary: [] };
  }
  return {
    pseudo: headerList(v.pseudo_headers, [...path, 'pseudo_headers'], problems),
    ordinary: headerList(v.ordinary_headers, [...path, 'ordinary_headers'], problems),
  };
}

function message(
  v: unknown,
  path: Array<string | number>,
  problems: DocProblem[],
): { compressed: boolean; data: Buffer } | undefined {
  if (!isObj(v)) {
    problems.push({
      path,
      message: `${path.join('.')}: expected a message (compression_flag, message_length, decoded_data)`,
    });
    return undefined;
  }
  const compressed = Number(v.compression_flag ?? 0) === 1;
  const text = typeof v.decoded_data === 'string' ? v.decoded_data : '';
  const length = Number(v.message_length ?? 0);
  if (typeof v.data_base64 === 'string') {
    const data = Buffer.from(v.data_base64, 'base64');
    // Kept bytes win unless the readable text was edited by hand.
    if (compressed || describeMessage(data) === text.trimEnd()) return { compressed, data };
  }
  if (text === '' && length === 0) return { compressed, data: Buffer.alloc(0) };
  try {
    return { compressed, data: encodeWireText(text) };
  } catch (err) {
    problems.push({
      path: [...path, 'decoded_data'],
      message: `${path.join('.')}.decoded_data: ${err instanceof Error ? err.message : String(err)}`,
    });
    return undefined;
  }
}

function side(v: unknown, path: string, problems: DocProblem[]): GrpcSideRead & { trailers: HeaderList } {
  const s = isObj(v) ? v : {};
  if (!isObj(v)) problems.push({ path: ['spec', path], message: `spec.${path}: missing` });
  const h = headersDoc(s.headers, ['spec', path, 'headers'], problems);
  const t = headersDoc(s.trailers, ['spec', path, 'trailers'], problems);
  const messages: Array<{ compressed: boolean; data: Buffer }> = [];
  if (Array.isArray(s.messages)) {
    s.messages.forEach((m, i) => {
      const r = message(m, ['spec', path, 'messages', i], problems);
      if (r) messages.push(r);
    });
  } else if (s.body !== undefined) {
    const r = message(s.body, ['spec', path, 'body'], problems);
    // a message of length 0 with no text: no message at all (an error answer)
    if (r && !(r.data.length === 0 && isObj(s.body) && Number(s.body.message_length ?? 0) === 0 && !s.body.data_base64))
      messages.push(r);
  }
  return { pseudoHeaders: h.pseudo, headers: h.ordinary, messages, trailers: t.ordinary };
}

export function readGrpcDoc(doc: Obj): DocRead<GrpcCall> {
  const problems: DocProblem[] = [];
  const spec = isObj(doc.spec) ? doc.spec : undefined;
  if (!spec) return { problems: [{ path: ['spec'], message: 'spec: missing' }] };
  const request = side(spec.grpcReq, 'grpcReq', problems);
  const response = side(spec.grpcResp, 'grpcResp', problems);
  const path = request.pseudoHeaders.find(([n]) => n === ':path')?.[1] ?? '';
  const m = /^\/([^/]+)\/([^/?]+)/.exec(path);
  const service = typeof spec.service === 'string' ? spec.service : (m?.[1] ?? '');
  const method = typeof spec.method === 'string' ? spec.method : (m?.[2] ?? '');
  if (!service || !method)
    problems.push({
      path: ['spec', 'grpcReq', 'headers', 'pseudo_headers'],
      message: 'spec.grpcReq.headers.pseudo_headers: no :path "/package.Service/Method" to name the call',
    });
  const noise = parseMockNoise(doc.noise);
  for (const p of noise.problems) problems.push({ path: p.at, message: p.message });
  if (problems.length > 0) return { problems };
  const noisePaths = noise.noise?.bodyPaths.map((p) => ['$', ...p].join('.'));
  return {
    value: {
      service,
      method,
      request: { pseudoHeaders: request.pseudoHeaders, headers: request.headers, messages: request.messages },
      response,
      ...(noisePaths && noisePaths.length > 0 ? { noisePaths } : {}),
    },
  };
}
