// gRPC exchanges on disk, in Keploy's `kind: gRPC` schema (keploy/keploy pkg/models/grpc.go:
// GrpcReq/GrpcResp with pseudo_headers, ordinary_headers, a length-prefixed message body, and the
// response's trailers). Keploy shows a message as `decoded_data` text; tlsrec writes the protobuf
// wire format by field number there and keeps the exact bytes in `data_base64` (Keploy ignores the
// extra keys), so that replay sends them byte for byte. Calls with more than one message per side
// (streaming) list them all under `messages`.

import { Document } from 'yaml';
import type { GrpcExchange, GrpcMessage, GrpcSide, HeaderList } from '../../model/exchange.js';
import { defaultMonoToWallNs, rfc3339, type DocOptions } from '../../format/render.js';
import { redactHeaders } from '../../format/redact.js';
import { API_VERSION } from '../../format/types.js';
import type protobuf from 'protobufjs';
import { messageJson, protoSchema } from './proto.js';
import { describeMessage } from './protowire.js';

export interface GrpcHeadersDoc {
  pseudo_headers: Record<string, string>;
  ordinary_headers: Record<string, string>;
}

export interface GrpcBodyDoc {
  compression_flag: number;
  message_length: number;
  decoded_data: string;
  /** tlsrec: the message's exact bytes. */
  data_base64: string;
  /** tlsrec: the message as JSON, by the user's .proto files (record --proto DIR), for reading. */
  decoded_json?: Record<string, unknown>;
}

export interface GrpcReqDoc {
  headers: GrpcHeadersDoc;
  body: GrpcBodyDoc;
  messages?: GrpcBodyDoc[];
}

export interface GrpcRespDoc extends GrpcReqDoc {
  trailers: GrpcHeadersDoc;
}

export interface GrpcSpecDoc {
  metadata: Record<string, string>;
  /** tlsrec: the call's service ("package.Service") and method, from :path. */
  service: string;
  method: string;
  grpcReq: GrpcReqDoc;
  grpcResp: GrpcRespDoc;
  created: number;
  reqTimestampMock?: string;
  resTimestampMock?: string;
}

export interface GrpcDoc {
  version: string;
  kind: 'gRPC';
  name: string;
  spec: GrpcSpecDoc;
  connectionId?: string;
}

const wallNs = (ns: bigint, opts: DocOptions): bigint => ns + (opts.monoToWallNs ?? defaultMonoToWallNs());

/** Keploy's map[string]string: a repeated name's values joined with ", ". */
function headerMap(headers: HeaderList): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [n, v] of headers) out[n] = n in out ? `${out[n]}, ${v}` : v;
  return out;
}

function headersDoc(pseudo: HeaderList, ordinary: HeaderList, opts: DocOptions): GrpcHeadersDoc {
  const headers = opts.redact === false ? ordinary : redactHeaders(ordinary, opts.redactHeaders);
  return { pseudo_headers: headerMap(pseudo), ordinary_headers: headerMap(headers) };
}

export function messageDoc(m: GrpcMessage | undefined, type?: protobuf.Type): GrpcBodyDoc {
  if (!m) return { compression_flag: 0, message_length: 0, decoded_data: '', data_base64: '' };
  const json = type && !m.compressed ? messageJson(type, m.data) : undefined;
  return {
    compression_flag: m.compressed ? 1 : 0,
    message_length: m.data.length,
    // a compressed message's bytes are not protobuf until decompressed with the side's grpc-encoding
    decoded_data: m.compressed ? `0x${m.data.toString('hex')}` : describeMessage(m.data),
    data_base64: m.data.toString('base64'),
    ...(json ? { decoded_json: json } : {}),
  };
}

function sideDoc(side: GrpcSide, opts: DocOptions, type: protobuf.Type | undefined): GrpcReqDoc {
  const doc: GrpcReqDoc = {
    headers: headersDoc(side.pseudoHeaders, side.headers, opts),
    body: messageDoc(side.messages[0], type),
  };
  if (side.messages.length > 1) doc.messages = side.messages.map((m) => messageDoc(m, type));
  return doc;
}

function spec(ex: GrpcExchange, opts: DocOptions): GrpcSpecDoc {
  const types = protoSchema(opts.protoDirs)?.method(ex.service, ex.method);
  const resp = sideDoc(ex.response, opts, types?.response);
  return {
    metadata: {},
    service: ex.service,
    method: ex.method,
    grpcReq: sideDoc(ex.request, opts, types?.request),
    grpcResp: { ...resp, trailers: headersDoc([], ex.response.trailers, opts) },
    created: Number(wallNs(ex.request.firstByteNs, opts) / 1_000_000_000n),
  };
}

export function grpcTestDoc(ex: GrpcExchange, n: number, opts: DocOptions = {}): GrpcDoc {
  return { version: API_VERSION, kind: 'gRPC', name: `test-${n}`, spec: spec(ex, opts) };
}

export function grpcMockDoc(ex: GrpcExchange, n: number, opts: DocOptions = {}): GrpcDoc {
  const s = spec(ex, opts);
  s.metadata = { name: 'gRPC', operation: `/${ex.service}/${ex.method}`, type: 'GRPC_CLIENT' };
  s.reqTimestampMock = rfc3339(wallNs(ex.request.firstByteNs, opts));
  s.resTimestampMock = rfc3339(wallNs(ex.response.firstByteNs, opts));
  return { version: API_VERSION, kind: 'gRPC', name: `mock-${n}`, spec: s, connectionId: ex.conn };
}

export function grpcYaml(doc: GrpcDoc, schemaRef?: string): string {
  const text = new Document(doc).toString({ lineWidth: 0, indent: 2 });
  return schemaRef ? `# yaml-language-server: $schema=${schemaRef}\n${text}` : text;
}
