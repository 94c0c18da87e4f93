// The registry: every protocol tlsrec records and replays, in the order they are asked to
// recognise a connection (the first that says yes takes it). Adding a protocol = a folder beside
// http1/ that exports a Protocol, and one line here.

import type { Exchange, HttpExchange } from '../model/exchange.js';
import { http1 } from './http1/index.js';
import { postgres } from './postgres/index.js';
import type { Protocol } from './protocol.js';

export const PROTOCOLS: readonly Protocol[] = [http1, postgres as unknown as Protocol];

/** YAML text of the n-th mock of a non-HTTP/1 exchange, through its protocol's `files`. */
export function renderOtherMock(ex: Exclude<Exchange, HttpExchange>, n: number, opts: { monoToWallNs?: bigint }): string {
  switch (ex.protocol) {
    case 'postgres':
      return postgres.files.yaml(postgres.files.mockDoc(ex, n, opts.monoToWallNs !== undefined ? { monoToWallNs: opts.monoToWallNs } : {}));
  }
}
