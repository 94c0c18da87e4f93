// h2c by `Upgrade: h2c` (RFC 7540 §3.2): a real curl --http2 on an http:// URL sends an HTTP/1.1
// request with Upgrade: h2c and HTTP2-Settings; after the server's 101 the connection is HTTP/2 and
// the upgrade request is answered on stream 1. The bytes go through a loopback relay
// (test/helpers/tap.ts) and are reconstructed as captured and re-split at every byte, in both roles.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CaptureEvent } from '../src/model/events.js';
import type { Exchange, HttpExchange } from '../src/model/exchange.js';
import { Reconstructor, type ReconstructStats } from '../src/record/reconstruct.js';
import { startH2cUpgradeServer, type H2cUpgradeServer } from './helpers/h2c-upgrade-server.js';
import { startTap } from './helpers/tap.js';

function run(events: Iterable<CaptureEvent>): { ex: Exchange[]; stats: ReconstructStats } {
  const ex: Exchange[] = [];
  const r = new Reconstructor({ onExchange: (e) => ex.push(e) });
  for (const e of events) r.push(e);
  return { ex, stats: r.finish() };
}

/** Every data event cut into one-byte events. */
function byteByByte(events: CaptureEvent[]): CaptureEvent[] {
  return events.flatMap((e): CaptureEvent[] => {
    if (e.type !== 'data') return [e];
    return Array.from(e.data, (_, k) => ({
      ...e,
      pos: e.pos + BigInt(k),
      chunkOff: e.chunkOff + k,
      data: e.data.subarray(k, k + 1),
    }));
  });
}

let server: H2cUpgradeServer;
const captured: Record<'connect' | 'accept', CaptureEvent[]> = { connect: [], accept: [] };
const curlOut: Record<'connect' | 'accept', string> = { connect: '', accept: '' };

beforeAll(async () => {
  server = await startH2cUpgradeServer();
  for (const role of ['connect', 'accept'] as const) {
    const tap = await startTap(server.port, role);
    const r = await promisify(execFile)(
      'curl',
      ['-sS', '--http2', '--max-time', '10', '-H', 'x-trace: t-1', `http://127.0.0.1:${tap.port}/hello?name=ada`],
      { encoding: 'utf8' },
    );
    curlOut[role] = r.stdout;
    await new Promise((res) => setTimeout(res, 100));
    captured[role] = tap.events();
    await tap.close();
  }
}, 30_000);
afterAll(async () => {
  await server?.close();
});

describe('h2c by Upgrade: h2c', () => {
  it('curl really upgraded (the answer came over HTTP/2 on stream 1)', () => {
    expect(JSON.parse(curlOut.connect)).toEqual({ method: 'GET', path: '/hello?name=ada', over: 'h2c-upgrade' });
    const wire = Buffer.concat(
      captured.connect.flatMap((e) => (e.type === 'data' && e.dir === 'in' ? [e.data] : [])),
    ).toString('latin1');
    expect(wire).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/);
  });

  for (const role of ['connect', 'accept'] as const) {
    const expectedRole = role === 'connect' ? 'outgoing' : 'incoming';
    for (const [how, split] of [
      ['as captured', (e: CaptureEvent[]) => e],
      ['byte by byte', byteByByte],
    ] as const) {
      it(`${expectedRole}, ${how}: the upgrade request is one HTTP/2 exchange, nothing skipped`, () => {
        const { ex, stats } = run(split(captured[role]));
        expect(stats.skipped).toEqual([]);
        expect(ex).toHaveLength(1);
        const e = ex[0] as HttpExchange;
        expect([
          e.protocol,
          e.role,
          e.request.method,
          e.request.target,
          e.request.httpVersion,
          e.response.statusCode,
          e.response.httpVersion,
        ]).toEqual(['http2', expectedRole, 'GET', '/hello?name=ada', '2', 200, '2']);
        // :authority becomes host; the upgrade's own hop-by-hop headers are gone
        const names = e.request.headers.map(([n]) => n.toLowerCase());
        expect(names).toContain('host');
        expect(e.request.headers).toContainEqual(['x-trace', 't-1']);
        expect(names.filter((n) => ['connection', 'upgrade', 'http2-settings'].includes(n))).toEqual([]);
        expect(e.response.headers).toEqual([
          ['content-type', 'application/json'],
          ['x-upgraded', 'yes'],
        ]);
        expect(JSON.parse(e.response.body.toString())).toEqual({
          method: 'GET',
          path: '/hello?name=ada',
          over: 'h2c-upgrade',
        });
      });
    }
  }
});
