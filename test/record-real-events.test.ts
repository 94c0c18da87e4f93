// Reconstruction from event streams recorded with real eBPF (`tlsrec record --dump-events`):
// the fixture app (incoming plain HTTP, outgoing HTTPS via https.request and fetch), python urllib
// (SSL_read_ex/SSL_write_ex, small reads) and curl reusing one TLS connection.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseEventLine } from '../src/record/event-file.js';
import type { CaptureEvent, DataEvent } from '../src/model/events.js';
import type { HttpExchange as Exchange } from '../src/model/exchange.js';
import { Reconstructor, type ReconstructStats } from '../src/record/reconstruct.js';

function load(name: string): CaptureEvent[] {
  return readFileSync(new URL(`../fixtures/events/${name}`, import.meta.url), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l, i) => parseEventLine(l, i + 1, name));
}

function reconstruct(events: CaptureEvent[]): { ex: Exchange[]; stats: ReconstructStats } {
  const ex: Exchange[] = [];
  const r = new Reconstructor({ onExchange: (e) => ex.push(e as Exchange) });
  for (const e of events) r.push(e);
  return { ex, stats: r.finish() };
}

/** Re-chunk every data event into pieces of `size` bytes (positions kept consistent). */
function resplit(events: CaptureEvent[], size: number): CaptureEvent[] {
  return events.flatMap((e): CaptureEvent[] => {
    if (e.type !== 'data' || e.data.length <= size) return [e];
    const parts: DataEvent[] = [];
    for (let off = 0; off < e.data.length; off += size) {
      parts.push({
        ...e,
        pos: e.pos + BigInt(off),
        chunkOff: e.chunkOff + off,
        data: e.data.subarray(off, off + size),
      });
    }
    return parts;
  });
}

const line = (e: Exchange) =>
  `${e.role} ${e.tls ? 'tls' : 'plain'} ${e.request.method} ${e.request.target} -> ${e.response.statusCode}`;

describe('reconstruction of real eBPF recordings', () => {
  it('fixture app: 4 incoming plain-HTTP tests, 3 outgoing HTTPS mocks, nothing skipped', () => {
    const { ex, stats } = reconstruct(load('real-fixture-app.jsonl'));
    expect(ex.filter((e) => e.role === 'incoming').map(line)).toEqual([
      'incoming plain GET /quote?sym=EVT -> 200',
      'incoming plain POST /orders -> 201',
      'incoming plain GET /gzip -> 200',
      'incoming plain GET /text -> 200',
    ]);
    expect(ex.filter((e) => e.role === 'outgoing').map(line)).toEqual([
      'outgoing tls GET /quote?sym=EVT -> 200',
      'outgoing tls POST /orders -> 201',
      'outgoing tls GET /gzip -> 200',
    ]);
    const gzip = ex.find((e) => e.role === 'outgoing' && e.request.target === '/gzip')!;
    expect(gzip.response.bodyDecoded).toBe(true);
    expect(JSON.parse(gzip.response.body.toString())).toEqual({ compressed: true, items: [1, 2, 3] });
    const order = ex.find((e) => e.role === 'outgoing' && e.request.method === 'POST')!;
    expect(JSON.parse(order.request.body.toString())).toEqual({ item: 'cup', qty: 1 });
    expect(stats.skipped).toEqual([]);
    expect(stats.incoming).toBe(4);
    expect(stats.outgoing).toBe(3);
  });

  it('python urllib (SSL_*_ex): one outgoing exchange with the whole body', () => {
    const { ex, stats } = reconstruct(load('real-python-urllib.jsonl'));
    expect(ex.map(line)).toEqual(['outgoing tls GET /quote?sym=PY -> 200']);
    expect(JSON.parse(ex[0]!.response.body.toString())).toMatchObject({ symbol: 'PY', source: 'upstream' });
    expect(stats.skipped).toEqual([]);
  });

  it('curl: two requests on one kept-alive TLS connection, paired in order', () => {
    const { ex } = reconstruct(load('real-curl-keepalive.jsonl'));
    expect(ex.map(line)).toEqual(['outgoing tls GET /quote?sym=A -> 200', 'outgoing tls GET /quote?sym=B -> 200']);
    expect(ex[0]!.conn).toBe(ex[1]!.conn);
    expect(ex.map((e) => e.indexOnConn)).toEqual([0, 1]);
  });

  it('gives the same exchanges however the kernel chunks were split', () => {
    for (const name of ['real-fixture-app.jsonl', 'real-python-urllib.jsonl', 'real-curl-keepalive.jsonl']) {
      const events = load(name);
      const whole = reconstruct(events).ex.map((e) => [
        line(e),
        e.request.body.toString('hex'),
        e.response.body.toString('hex'),
      ]);
      for (const size of [1, 2, 7, 64]) {
        const split = reconstruct(resplit(events, size)).ex.map((e) => [
          line(e),
          e.request.body.toString('hex'),
          e.response.body.toString('hex'),
        ]);
        expect(split).toEqual(whole);
      }
    }
  });
});
