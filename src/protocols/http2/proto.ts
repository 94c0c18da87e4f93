// The user's .proto files (`tlsrec record --proto DIR`, tlsrec.yaml `proto:`), read with protobufjs:
// a gRPC call's request and response types by service and method, so that messages are shown as
// JSON and differences are named by field ($.currency) instead of by number.

import { readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import protobuf from 'protobufjs';

export interface MethodTypes {
  request: protobuf.Type;
  response: protobuf.Type;
}

/** The services of every .proto file under some directories. */
export class ProtoSchema {
  private readonly root: protobuf.Root;

  private constructor(root: protobuf.Root) {
    this.root = root;
  }

  /** Every .proto file under `dirs` (recursively); imports are resolved against the same directories. */
  static load(dirs: readonly string[]): ProtoSchema {
    const roots = dirs.map((d) => resolve(d));
    const files = roots.flatMap((d) => protoFiles(d));
    const root = new protobuf.Root();
    root.resolvePath = (origin, target) => {
      for (const d of roots) {
        const p = join(d, target);
        try {
          if (statSync(p).isFile()) return p;
        } catch {
          // not under this directory
        }
      }
      return protobuf.util.path.resolve(origin, target);
    };
    root.loadSync(files, { keepCase: true });
    root.resolveAll();
    return new ProtoSchema(root);
  }

  /** The request and response types of "package.Service"/"Method", when the files define it. */
  method(service: string, method: string): MethodTypes | undefined {
    const svc = this.root.lookup(service);
    if (!(svc instanceof protobuf.Service)) return undefined;
    const m = svc.methods[method];
    if (!m) return undefined;
    m.resolve();
    return m.resolvedRequestType && m.resolvedResponseType
      ? { request: m.resolvedRequestType, response: m.resolvedResponseType }
      : undefined;
  }
}

function protoFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return protoFiles(p);
    return e.name.endsWith('.proto') ? [p] : [];
  });
}

const cache = new Map<string, ProtoSchema>();

/** The schema of these directories, loaded once per process. */
export function protoSchema(dirs: readonly string[] | undefined): ProtoSchema | undefined {
  if (!dirs || dirs.length === 0) return undefined;
  const key = dirs.join('\0');
  let s = cache.get(key);
  if (!s) {
    s = ProtoSchema.load(dirs);
    cache.set(key, s);
  }
  return s;
}

/** A message as the JSON object its type describes (int64 as strings, enums by name, bytes base64). */
export function messageJson(type: protobuf.Type, bytes: Buffer): Record<string, unknown> | undefined {
  try {
    return type.toObject(type.decode(bytes), {
      longs: String,
      enums: String,
      bytes: String,
      defaults: false,
    }) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** Where two JSON values differ, by path ($.detail.weight, $.tags[1]). */
export function jsonDiff(
  expected: unknown,
  actual: unknown,
  path = '$',
): Array<{ path: string; expected: string; actual: string }> {
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObj(expected) && isObj(actual)) {
    return [...new Set([...Object.keys(expected), ...Object.keys(actual)])].flatMap((k) =>
      jsonDiff(expected[k], actual[k], `${path}.${k}`),
    );
  }
  if (Array.isArray(expected) && Array.isArray(actual) && expected.length === actual.length) {
    return expected.flatMap((v, i) => jsonDiff(v, actual[i], `${path}[${i}]`));
  }
  const e = expected === undefined ? '(absent)' : JSON.stringify(expected);
  const a = actual === undefined ? '(absent)' : JSON.stringify(actual);
  return e === a ? [] : [{ path, expected: e, actual: a }];
}
