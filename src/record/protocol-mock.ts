// The mock documents of protocols other than HTTP/1, rendered through their Protocol's `files`
// (src/format/ writes the text; it does not import src/protocols/).

import type { Exchange, HttpExchange } from '../model/exchange.js';
import type { DocOptions } from '../format/render.js';
import { PROTOCOLS } from '../protocols/index.js';

/** YAML text of the n-th mock document for an exchange of a protocol other than HTTP/1. */
export function renderProtocolMock(ex: Exclude<Exchange, HttpExchange>, n: number, opts: DocOptions): string {
  const p = PROTOCOLS.find((q) => q.name === ex.protocol);
  if (!p) throw new Error(`no protocol named ${ex.protocol} in the registry`);
  return p.files.yaml(p.files.mockDoc(ex, n, opts));
}
