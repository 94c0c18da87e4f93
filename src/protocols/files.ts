// The registry's `files` as format/ takes them (format/ does not import protocols/): the readers
// the loader (src/format/reader.ts) is given for the `kind:`s other protocols read, and the
// document makers the writer (src/format/writer.ts) is given for their exchanges.

import type { DocReader, DocReaders } from '../format/protocol-docs.js';
import type { ExchangeDocs } from '../format/test-set-writer.js';
import { PROTOCOLS } from './index.js';
import type { Protocol } from './protocol.js';

/** Readers by kind for every protocol that reads mock or test documents; the first to claim a kind keeps it. */
export function docReaders(protocols: readonly Protocol[] = PROTOCOLS): DocReaders {
  const mocks = new Map<string, DocReader>();
  const tests = new Map<string, DocReader>();
  for (const p of protocols) {
    const { readMock, readTest, claimsMock, mockKinds = [], testKinds = [] } = p.files;
    if (readMock)
      for (const k of mockKinds)
        if (!mocks.has(k))
          mocks.set(k, {
            protocol: p.name,
            read: (doc, where) => readMock.call(p.files, doc, where),
            ...(claimsMock ? { claims: (doc) => claimsMock.call(p.files, doc) } : {}),
          });
    if (readTest)
      for (const k of testKinds)
        if (!tests.has(k)) tests.set(k, { protocol: p.name, read: (doc, where) => readTest.call(p.files, doc, where) });
  }
  return { mocks, tests };
}

/** Document makers by protocol name, for every protocol but HTTP/1 (which the writer renders itself). */
export function exchangeDocs(protocols: readonly Protocol[] = PROTOCOLS): Map<string, ExchangeDocs> {
  const out = new Map<string, ExchangeDocs>();
  for (const p of protocols) {
    for (const name of [p.name, ...(p.files.exchangeProtocols ?? [])])
      if (name !== 'http1' && !out.has(name)) out.set(name, p.files);
  }
  return out;
}
