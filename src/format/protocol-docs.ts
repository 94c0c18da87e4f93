// The on-disk side of protocols other than HTTP/1: what a protocol's reader is given and gives
// back, and the protocol-neutral envelope a loaded mock or test is kept in. Defined here, below the
// protocols, so that the reader (src/format/reader.ts) can use readers injected from replay/
// without importing src/protocols/.

/** A place inside one YAML document: keys and sequence indices from its root. */
export type DocPath = ReadonlyArray<string | number>;

/** Something wrong in a document; the reader turns `path` into file:line:column. */
export interface DocProblem {
  path: DocPath;
  /** What was found and what was expected, e.g. "spec.query: expected a string, found 3". */
  message: string;
  /** Point at the key rather than its value (a misspelled or unknown key). */
  atKey?: boolean;
}

/** Where the document a protocol reads comes from. */
export interface DocWhere {
  file: string;
  /** 1-based line where the document starts in `file`. */
  line: number;
  /** Mocks: 0-based position of the document in mocks.yaml, all kinds counted (the recorded order). */
  index: number;
}

/** What a protocol's reader gives: the value, or every problem found in the document. */
export type DocRead<V> = { value: V } | { problems: DocProblem[] };

/**
 * A mock or test of a protocol other than HTTP/1, as loaded: the protocol-neutral envelope the
 * reader fills (from the document's `kind` and `name` and where it was), around the protocol's own
 * value. HTTP/1 mocks and tests keep their own types (src/format/types.ts Mock, TestCase).
 */
export interface LoadedDoc<V = unknown> {
  /** The Protocol that read it (its `name`). */
  protocol: string;
  /** The document's `kind:`. */
  kind: string;
  file: string;
  /** 1-based line where the document starts. */
  line: number;
  name: string;
  /** Mocks: 0-based position in mocks.yaml, all kinds counted. Tests: position in the set's test files. */
  index: number;
  value: V;
}

/** One `kind:`'s reader, as the loader is given it (built from the protocol registry above format/). */
export interface DocReader {
  /** The protocol that reads the kind (its `name`). */
  protocol: string;
  read(doc: Readonly<Record<string, unknown>>, where: DocWhere): DocRead<unknown>;
  /**
   * False for a document of the kind in another tool's shape (Keploy's packet-style `Postgres`):
   * it is then skipped with a warning, as kinds no protocol reads are.
   */
  claims?(doc: Readonly<Record<string, unknown>>): boolean;
}

/** Readers by `kind:`, for mock documents and for test documents. */
export interface DocReaders {
  mocks: ReadonlyMap<string, DocReader>;
  tests: ReadonlyMap<string, DocReader>;
}
