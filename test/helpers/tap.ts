// A loopback TCP relay that keeps every chunk it forwards, in order, as capture events: real bytes of
// a real client and server (HTTP/2 from node's nghttp2, gRPC from @grpc/grpc-js) without eBPF, for
// reconstruction tests. The client side is "the app": what the client wrote is 'out'.

import * as net from 'node:net';
import type { CaptureEvent, Direction } from '../../src/model/events.js';

export interface Tap {
  port: number;
  /** Events of every connection relayed so far (one connId per connection), in forwarding order. */
  events(): CaptureEvent[];
  close(): Promise<void>;
}

export async function startTap(upstreamPort: number, role: 'connect' | 'accept' = 'connect'): Promise<Tap> {
  const evs: CaptureEvent[] = [];
  let ts = 1_000_000n;
  let nextConn = 1n;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const connId = nextConn++;
    const pos: Record<Direction, bigint> = { in: 0n, out: 0n };
    const base = () => ({ tsNs: (ts += 1000n), tgid: 7, tid: 7, source: 'socket' as const, connId });
    // role 'connect': the client is the app (its writes are 'out'); 'accept': the server is the app.
    evs.push({
      ...base(),
      type: 'open',
      role,
      localAddr: '127.0.0.1',
      localPort: role === 'accept' ? upstreamPort : 40000,
      remoteAddr: '127.0.0.1',
      remotePort: role === 'accept' ? 40000 : upstreamPort,
    });
    const upstream = net.connect(upstreamPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    const record = (dir: Direction, data: Buffer): void => {
      evs.push({
        ...base(),
        type: 'data',
        dir,
        pos: pos[dir],
        callLen: data.length,
        chunkOff: 0,
        data: Buffer.from(data),
      });
      pos[dir] += BigInt(data.length);
    };
    const clientDir: Direction = role === 'connect' ? 'out' : 'in';
    const serverDir: Direction = role === 'connect' ? 'in' : 'out';
    client.on('data', (d) => {
      record(clientDir, d);
      upstream.write(d);
    });
    upstream.on('data', (d) => {
      record(serverDir, d);
      client.write(d);
    });
    let closed = false;
    const done = (): void => {
      if (closed) return;
      closed = true;
      evs.push({ ...base(), type: 'close' });
      client.destroy();
      upstream.destroy();
    };
    client.on('close', done).on('error', done);
    upstream.on('close', done).on('error', done);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    events: () => [...evs],
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
