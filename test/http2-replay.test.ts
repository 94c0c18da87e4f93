// The replay half of HTTP/2 without eBPF: real grpc-js and node:http2 traffic (through the relay of
// test/helpers/tap.ts) reconstructed, written by the writer, read back by the loader, and served by
// the mock server to real clients: a recorded call answers as recorded, a changed one gets
// UNAVAILABLE naming the closest mock and the field, a plain HTTP/2 request with no mock gets 502.
// Hand edits of a message's wire text are re-encoded.

import * as http2 from 'node:http2';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTestSets } from '../src/format/reader.js';
import type { TestSet } from '../src/format/types.js';
import { TestSetWriter } from '../src/format/test-set-writer.js';
import type { Exchange } from '../src/model/exchange.js';
import { docReaders, exchangeDocs } from '../src/protocols/files.js';
import { describeMessage, encodeWireText } from '../src/protocols/http2/protowire.js';
import type { GrpcCall } from '../src/protocols/http2/read.js';
import { PROTOCOLS } from '../src/protocols/index.js';
import { Reconstructor } from '../src/record/reconstruct.js';
import { createRunCa, type RunCa } from '../src/replay/mocks/ca.js';
import { MockMatcher } from '../src/replay/mocks/matcher.js';
import { startMockServer, type MockServer } from '../src/replay/mocks/server.js';
import { shopClient, startShopServer } from './helpers/grpc-shop.js';
import { startTap } from './helpers/tap.js';

let root: string;
let set: TestSet;
let ca: RunCa;
let server: MockServer;
const missLog: string[] = [];

async function recordShopCalls(): Promise<Exchange[]> {
  const shop = await startShopServer();
  const tap = await startTap(shop.port);
  const client = shopClient(tap.port);
  await client.getPrice({ sku: 'book-1', quantity: 2 }, { 'x-tenant': 'acme' });
  await client.getPrice({ sku: 'missing', quantity: 1 });
  client.close();
  await new Promise((r) => setTimeout(r, 100));
  const events = tap.events();
  await tap.close();
  await shop.close();
  const ex: Exchange[] = [];
  const r = new Reconstructor({ onExchange: (e) => ex.push(e) });
  for (const e of events) r.push(e);
  r.finish();
  return ex;
}

function load(): TestSet {
  return loadTestSets(join(root, 'tlsrec'), { readers: docReaders(PROTOCOLS) })[0]!;
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'tlsrec-h2-replay-'));
  const writer = await TestSetWriter.create({ rootDir: join(root, 'tlsrec') }, exchangeDocs());
  for (const e of await recordShopCalls()) writer.writeExchange(e);
  await writer.close();
  set = load();
  ca = createRunCa({ tmpDir: root, hosts: ['shop.test'] });
  server = await startMockServer({
    matcher: new MockMatcher(set.mocks),
    ca,
    protocols: PROTOCOLS,
    protocolMocks: set.protocolMocks ?? [],
    onMiss: (m) => missLog.push(m),
  });
}, 30_000);

afterAll(async () => {
  await server?.close();
  ca?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('gRPC mocks read back and served over h2c', () => {
  it('the loader reads the kind: gRPC mocks through the http2 protocol', () => {
    const mocks = set.protocolMocks ?? [];
    expect(mocks.map((m) => [m.protocol, m.kind, m.name])).toEqual([
      ['http2', 'gRPC', 'mock-0'],
      ['http2', 'gRPC', 'mock-1'],
    ]);
    const call = mocks[0]!.value as GrpcCall;
    expect([call.service, call.method]).toEqual(['shop.v1.Prices', 'GetPrice']);
    expect(describeMessage(call.request.messages[0]!.data)).toBe('1: "book-1"\n2: 2');
    expect((mocks[1]!.value as GrpcCall).response.messages).toEqual([]);
  });

  it('a recorded call is answered as recorded, the NOT_FOUND one too', async () => {
    const client = shopClient(server.port);
    const ok = await client.getPrice({ sku: 'book-1', quantity: 2 }, { 'x-tenant': 'acme' });
    expect(ok).toEqual({
      code: 0,
      reply: {
        sku: 'book-1',
        cents: '3998',
        currency: 'EUR',
        tags: ['book', 'paper'],
        detail: { inStock: true, weight: 0.25 },
      },
    });
    expect(await client.getPrice({ sku: 'missing', quantity: 1 })).toEqual({
      code: 5,
      details: 'no such sku: missing',
    });
    client.close();
  });

  it('a call no mock matches gets UNAVAILABLE, naming the closest mock and the field', async () => {
    const client = shopClient(server.port);
    const miss = await client.getPrice({ sku: 'book-1', quantity: 7 });
    client.close();
    expect(miss.code).toBe(14);
    expect(miss.details).toMatch(
      /no gRPC mock for \/shop\.v1\.Prices\/GetPrice; closest mock-0: message \$\.2 expected 2, got 7/,
    );
    expect(missLog.at(-1)).toMatch(/closest mock-0/);
  });

  it('a plain HTTP/2 request with no HTTP mock is answered 502 by the HTTP matcher', async () => {
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    const status = await new Promise<number>((resolve, reject) => {
      const req = session.request({ ':path': '/nothing', ':authority': 'shop.test' });
      req.on('response', (h) => resolve(Number(h[':status'])));
      req.on('error', reject);
      req.resume();
      req.end();
    });
    session.close();
    expect(status).toBe(502);
  });
});

describe('gRPC mock noise', () => {
  it('a mock with noise on a request field answers calls that differ only there', async () => {
    const file = join(set.dir, 'mocks.yaml');
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text.replace(/^name: mock-0\n/m, 'name: mock-0\nnoise:\n  req:\n    - body.2\n'));
    let noisy: MockServer | undefined;
    try {
      const edited = load();
      expect((edited.protocolMocks![0]!.value as GrpcCall).noisePaths).toEqual(['$.2']);
      noisy = await startMockServer({
        matcher: new MockMatcher(edited.mocks),
        ca,
        protocols: PROTOCOLS,
        protocolMocks: edited.protocolMocks ?? [],
      });
      const client = shopClient(noisy.port);
      expect((await client.getPrice({ sku: 'book-1', quantity: 7 })).reply?.cents).toBe('3998');
      // field 1 is not noise: still a miss
      expect((await client.getPrice({ sku: 'book-2', quantity: 2 })).code).toBe(14);
      client.close();
    } finally {
      writeFileSync(file, text);
      await noisy?.close();
    }
  });
});

describe('the wire text', () => {
  it('encodes back to the exact bytes', () => {
    for (const m of set.protocolMocks ?? []) {
      const c = m.value as GrpcCall;
      for (const msg of [...c.request.messages, ...c.response.messages])
        expect(encodeWireText(describeMessage(msg.data)).equals(msg.data)).toBe(true);
    }
  });

  it('a hand edit of decoded_data is re-encoded when the mocks are read', () => {
    const file = join(set.dir, 'mocks.yaml');
    const text = readFileSync(file, 'utf8');
    writeFileSync(
      file,
      text.replace(/decoded_data: \|-\n(\s+)1: "book-1"\n(\s+)2: 2/, 'decoded_data: |-\n$11: "book-1"\n$22: 5'),
    );
    try {
      const edited = load().protocolMocks![0]!.value as GrpcCall;
      expect(describeMessage(edited.request.messages[0]!.data)).toBe('1: "book-1"\n2: 5');
    } finally {
      writeFileSync(file, text);
    }
  });
});
