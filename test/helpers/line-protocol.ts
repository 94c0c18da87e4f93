// A tiny line-based protocol that exists only in tests, to prove the replay half of the protocol
// seam without a real protocol: the client sends "GET <key>\n", the server answers "VALUE <value>\n"
// (or "MISS <why>\n"); "STARTTLS\n" (answered "OK\n") upgrades the connection to TLS in-band, as
// Postgres' SSLRequest does. Mocks are `kind: Line` documents (spec.key, spec.value), tests are
// `kind: LineTest` documents (the same spec: the key sent to the app and the value it must answer).
// Not in PROTOCOLS: tests hand it to the reader, the mock server and the runner explicitly.

import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Exchange } from '../../src/model/exchange.js';
import type {
  DocProblem,
  DocRead,
  LoadedDoc,
  MockServeContext,
  Protocol,
  ProtocolTypes,
  ReplayContext,
  ReplayOutcome,
} from '../../src/protocols/protocol.js';

export interface LineSpec {
  key: string;
  value: string;
}

/** What recording would give the writer for one line exchange (the toy has no reconstructor). */
export interface LineExchange {
  protocol: 'line';
  role: 'incoming' | 'outgoing';
  key: string;
  value: string;
}

interface LineTypes extends ProtocolTypes {
  testDoc: Record<string, unknown>;
  mockDoc: Record<string, unknown>;
  mock: LineSpec;
  test: LineSpec;
}

function readSpec(doc: Readonly<Record<string, unknown>>): DocRead<LineSpec> {
  const spec = doc.spec as Record<string, unknown> | null | undefined;
  const problems: DocProblem[] = [];
  for (const k of ['key', 'value'] as const) {
    const v = spec?.[k];
    if (typeof v !== 'string')
      problems.push({
        path: ['spec', k],
        message: `spec.${k}: expected a string, found ${JSON.stringify(v) ?? 'nothing'}`,
      });
  }
  for (const k of Object.keys(spec ?? {})) {
    if (k !== 'key' && k !== 'value')
      problems.push({ path: ['spec', k], message: `spec.${k}: unknown field, expected key or value`, atKey: true });
  }
  return problems.length > 0 ? { problems } : { value: { key: spec!.key as string, value: spec!.value as string } };
}

/** Splits a byte stream into lines; `onLine` gets each without its "\n". */
function lines(socket: Duplex, onLine: (line: string) => void): () => void {
  let buf = '';
  const onData = (c: Buffer): void => {
    buf += c.toString('utf8');
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      onLine(line);
    }
  };
  socket.on('data', onData);
  return () => socket.off('data', onData);
}

function serveLines(socket: Duplex, ctx: MockServeContext<LineSpec>): void {
  const used = new Set<LoadedDoc<LineSpec>>();
  const stop = lines(socket, (line) => {
    if (line === 'STARTTLS') {
      stop();
      socket.pause();
      socket.write('OK\n');
      ctx.startTls(socket).then(
        (secure) => serveLines(secure, ctx),
        () => socket.destroy(),
      );
      return;
    }
    const key = line.replace(/^GET /, '');
    const url = `line://${ctx.destination.servername ?? 'plain'}/${key}`;
    const hits = ctx.mocks.filter((m) => m.value.key === key);
    const mock = hits.find((m) => !used.has(m)) ?? hits[hits.length - 1];
    if (mock) {
      const reused = used.has(mock);
      used.add(mock);
      ctx.hit({ mock: mock.name, method: 'GET', url, ...(reused ? { reused: true } : {}) });
      socket.write(`VALUE ${mock.value.value}\n`);
      return;
    }
    const closest = ctx.mocks.find((m) => !used.has(m)) ?? ctx.mocks[0];
    const message = closest
      ? `no Line mock for GET ${key}; closest ${closest.name} differs at key (expected ${JSON.stringify(closest.value.key)}, got ${JSON.stringify(key)})`
      : `no Line mock for GET ${key}; there are no Line mocks`;
    ctx.miss({
      method: 'GET',
      url,
      ...(closest
        ? {
            closest: {
              mock: closest.name,
              field: 'key',
              detail: `expected ${JSON.stringify(closest.value.key)}, got ${JSON.stringify(key)}`,
            },
          }
        : {}),
      message,
    });
    socket.write(`MISS ${message}\n`);
  });
}

async function replayLine(test: LoadedDoc<LineSpec>, ctx: ReplayContext): Promise<ReplayOutcome> {
  const started = performance.now();
  const answer = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(ctx.app.port, ctx.app.host);
    const timer = setTimeout(() => socket.destroy(new Error(`no answer in ${ctx.timeoutMs} ms`)), ctx.timeoutMs);
    socket.on('error', reject);
    socket.on('close', () => clearTimeout(timer));
    socket.once('connect', () => socket.write(`GET ${test.value.key}\n`));
    lines(socket, (line) => {
      resolve(line);
      socket.end();
    });
  });
  const durationMs = performance.now() - started;
  const actual = answer.replace(/^VALUE /, '');
  const passed = answer.startsWith('VALUE ') && actual === test.value.value;
  return {
    method: 'GET',
    url: test.value.key,
    passed,
    durationMs,
    failures: passed
      ? []
      : [
          {
            path: 'value',
            expected: test.value.value,
            actual,
            message: `${test.name}: value: expected ${JSON.stringify(test.value.value)}, got ${JSON.stringify(actual)}`,
          },
        ],
  };
}

const doc = (kind: string, ex: LineExchange, name: string): Record<string, unknown> => ({
  version: 'api.keploy.io/v1beta1',
  kind,
  name,
  spec: { key: ex.key, value: ex.value },
});

const lineProtocolTyped = {
  detect: () => ({ verdict: 'no', why: 'the line protocol is replay-only' }),
  reconstruct: () => {
    throw new Error('the line protocol does not record');
  },
  files: {
    kind: 'LineTest',
    mockKinds: ['Line'],
    testKinds: ['LineTest'],
    readMock: (d) => readSpec(d),
    readTest: (d) => readSpec(d),
    testDoc: (ex, n) => doc('LineTest', ex as unknown as LineExchange, `test-${n}`),
    mockDoc: (ex, n) => doc('Line', ex as unknown as LineExchange, `mock-${n}`),
    yaml: (d) => {
      const spec = d.spec as LineSpec;
      return `version: ${String(d.version)}\nkind: ${String(d.kind)}\nname: ${String(d.name)}\nspec:\n  key: ${JSON.stringify(spec.key)}\n  value: ${JSON.stringify(spec.value)}\n`;
    },
  },
  compare: () => ({ passed: false }),
  replay: replayLine,
  mocks: {
    // "GET key\n" has no second space: an HTTP request line ("GET /x HTTP/1.1") is not ours.
    accepts: (first) => /^(GET [^ \r\n]*\n|STARTTLS\n)/.test(first.toString('latin1')),
    matcher: () => ({ match: () => undefined }),
    alpn: ['line'],
    serve: serveLines,
  },
} satisfies Omit<Protocol<LineTypes>, 'name'>;

/**
 * The toy as a registry entry. Protocol names are the Exchange union's `protocol` values; the toy
 * has no exchange type in that union, hence the cast.
 */
export const lineProtocol = { name: 'line', ...lineProtocolTyped } as unknown as Protocol;

/** A line exchange as the writer would receive it from recording. */
export const lineExchange = (role: LineExchange['role'], key: string, value: string): Exchange =>
  ({ protocol: 'line', role, key, value }) as unknown as Exchange;
