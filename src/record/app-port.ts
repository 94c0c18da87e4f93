// The port the recorded app served on, from a request it received: written to tlsrec.yaml as
// appPort so that `tlsrec test` knows where to send the tests.

import { firstHeader } from '../model/headers.js';
import type { Exchange } from '../model/exchange.js';

/** The local port of an incoming exchange, else the port of its Host header (or the scheme's). */
export function appPortOf(ex: Exchange): number | undefined {
  if (ex.localPort) return ex.localPort;
  if (ex.protocol !== 'http1') return undefined;
  const host = firstHeader(ex.request.headers, 'host');
  const m = host ? /:(\d+)$/.exec(host) : null;
  if (m) return Number(m[1]);
  return host ? (ex.tls ? 443 : 80) : undefined;
}
