// Builds Exchange values for the format tests.
import type { HttpExchange as Exchange, HeaderList } from '../../src/model/exchange.js';

export interface ExOpts {
  role?: 'incoming' | 'outgoing';
  tls?: boolean;
  method?: string;
  target?: string;
  reqHeaders?: HeaderList;
  reqBody?: Buffer | string;
  status?: number;
  statusMessage?: string;
  resHeaders?: HeaderList;
  resBody?: Buffer | string;
  reqDecoded?: boolean;
  resDecoded?: boolean;
}

export function makeExchange(o: ExOpts = {}): Exchange {
  const buf = (b: Buffer | string | undefined): Buffer =>
    b === undefined ? Buffer.alloc(0) : Buffer.isBuffer(b) ? b : Buffer.from(b, 'utf8');
  return {
    protocol: 'http1',
    role: o.role ?? 'incoming',
    tls: o.tls ?? false,
    conn: '1234:7:1',
    indexOnConn: 0,
    tgid: 1234,
    localAddr: '127.0.0.1',
    localPort: 3000,
    remoteAddr: '127.0.0.2',
    remotePort: 443,
    request: {
      method: o.method ?? 'GET',
      target: o.target ?? '/',
      httpVersion: '1.1',
      headers: o.reqHeaders ?? [['Host', o.role === 'outgoing' ? 'api.example.com' : 'localhost:3000']],
      body: buf(o.reqBody),
      bodyDecoded: o.reqDecoded ?? true,
      firstByteNs: 1_000_000_000n,
    },
    response: {
      statusCode: o.status ?? 200,
      statusMessage: o.statusMessage ?? 'OK',
      httpVersion: '1.1',
      headers: o.resHeaders ?? [['Date', 'Mon, 22 Apr 2024 15:12:58 GMT']],
      body: buf(o.resBody),
      bodyDecoded: o.resDecoded ?? true,
      firstByteNs: 1_002_000_000n,
      informational: [],
    },
  };
}

/** Fixed clock: kernel time 1s = 2024-01-01T00:00:01Z. */
export const MONO_TO_WALL = BigInt(Date.UTC(2024, 0, 1)) * 1_000_000n;
