// Where an expected value stands in a test file: the line (and column) of `status_code`'s value, of
// one response header, of the response body — and, when the body is JSON in a literal block scalar
// (`body: |`, as tlsrec writes it), of one JSON path inside it, so an annotation points at the line
// a person would edit. Files are parsed with the `yaml` Document API only when asked (for failing
// tests); loading tests keeps its fast path.

import * as fs from 'node:fs';
import {
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  Scalar,
  type Document,
  type Node,
  type YAMLMap,
} from 'yaml';
import { parseYaml, positionOf } from './validate.js';

export interface FilePosition {
  /** 1-based. */
  line: number;
  /** 1-based. */
  col: number;
}

/** A field of a test's expected response (or its request, for "no response at all"). */
export type ExpectedField =
  | { kind: 'status' }
  | { kind: 'header'; name: string }
  /** `jsonPath`: segments of a JSON body; `textLine`: 1-based line of a text body; neither: the body itself. */
  | { kind: 'body'; jsonPath?: ReadonlyArray<string | number>; textLine?: number }
  | { kind: 'request' };

/** A test file read once, for any number of lookups. */
export class TestFilePositions {
  private constructor(
    private readonly doc: Document.Parsed,
    private readonly lc: LineCounter,
    private readonly source: string,
  ) {}

  /** Undefined when the file cannot be read or holds no document (it changed since it was loaded). */
  static read(file: string): TestFilePositions | undefined {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      return undefined;
    }
    return TestFilePositions.fromText(file, text);
  }

  static fromText(file: string, text: string): TestFilePositions | undefined {
    const parsed = parseYaml(file, text);
    const doc = parsed.docs[0];
    return doc ? new TestFilePositions(doc, parsed.lineCounter, text) : undefined;
  }

  /** Where the expected value of `field` stands; the nearest enclosing node when it is not there. */
  of(field: ExpectedField): FilePosition {
    switch (field.kind) {
      case 'status':
        return this.at(['spec', 'resp', 'status_code']);
      case 'request':
        return this.at(['spec', 'req', 'url']);
      case 'header':
        return this.header(field.name);
      case 'body':
        return this.body(field);
    }
  }

  private at(path: ReadonlyArray<string | number>, atKey = false): FilePosition {
    return this.pos(positionOf(this.doc, this.lc, path, atKey));
  }

  private pos(p: { line: number; col: number }): FilePosition {
    return { line: p.line, col: p.col };
  }

  private respMap(): YAMLMap | undefined {
    const resp = this.doc.getIn(['spec', 'resp'], true);
    return isMap(resp) ? resp : undefined;
  }

  private header(name: string): FilePosition {
    const headers = this.respMap()?.get('header', true);
    if (isMap(headers)) {
      const pair = headers.items.find(
        (p) => isPair(p) && isScalar(p.key) && String(p.key.value).toLowerCase() === name.toLowerCase(),
      );
      if (pair) {
        const value = pair.value as Node | null;
        const target = isSeq(value) && value.items.length > 0 ? (value.items[0] as Node) : value;
        const offset = target?.range?.[0] ?? (pair.key as Node).range?.[0];
        if (offset !== undefined) return this.pos(this.lc.linePos(offset));
      }
    }
    return this.at(['spec', 'resp', 'header'], true);
  }

  private body(field: { jsonPath?: ReadonlyArray<string | number>; textLine?: number }): FilePosition {
    const bodyNode = this.respMap()?.get('body', true);
    const whole = this.at(['spec', 'resp', 'body']);
    if (
      !isScalar(bodyNode) ||
      typeof bodyNode.value !== 'string' ||
      bodyNode.type !== Scalar.BLOCK_LITERAL ||
      !bodyNode.range
    ) {
      return whole;
    }
    // In a literal block scalar each line of the value is one line of the file, after the `|` line.
    const headerLine = this.lc.linePos(bodyNode.range[0]).line;
    const text = bodyNode.value;
    const lines = text.split('\n');
    const lineCount = text.endsWith('\n') ? lines.length - 1 : lines.length;
    const inBlock = (textLine: number): FilePosition => {
      const n = Math.min(Math.max(textLine, 1), Math.max(lineCount, 1));
      const line = headerLine + n;
      const sourceLine = this.source.split('\n', line)[line - 1] ?? '';
      return { line, col: sourceLine.length - sourceLine.trimStart().length + 1 };
    };
    if (field.textLine !== undefined) return inBlock(field.textLine);
    if (field.jsonPath !== undefined) {
      const found = jsonValueLine(text, field.jsonPath);
      if (found !== undefined) return inBlock(found);
      return whole;
    }
    return inBlock(1);
  }
}

/**
 * The 1-based line, in JSON text, of the value at `path` (or of its nearest ancestor that exists).
 * JSON is YAML, so the `yaml` parser gives the positions. Undefined when the text is not JSON.
 */
export function jsonValueLine(text: string, path: ReadonlyArray<string | number>): number | undefined {
  try {
    JSON.parse(text);
  } catch {
    return undefined;
  }
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: false, prettyErrors: false });
  if (doc.errors.length > 0) return undefined;
  return positionOf(doc, lc, path).line;
}
