// In-place edits of test and mock files, for `tlsrec test --detect-noise` and `--update`: the file
// is parsed with the `yaml` Document API, only the nodes that change are touched, and only the
// documents that changed are written again, so comments, key order, quoting, block scalars and the
// indentation the file uses (2 spaces as tlsrec writes, 4 as Keploy writes) survive. A document
// nobody edited keeps its bytes; a file nobody edited is not written at all.

import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { basename, dirname, join } from 'node:path';
import {
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parseAllDocuments,
  parseDocument,
  Scalar,
  YAMLMap,
  YAMLSeq,
  type Document,
  type Pair,
} from 'yaml';
import { OutputError, causeText } from '../errors.js';
import type { HeaderList } from '../model/exchange.js';
import { encodeBody } from './stored-body.js';
import { bodyScalarType } from './render.js';
import { positionOf } from './validate.js';

/** The response a test should now expect, as the app answered it (headers already redacted). */
export interface NewResponse {
  status?: number;
  /** Header values to set (name matched case-insensitively; a repeated name becomes a list). */
  setHeaders?: HeaderList;
  /** Header names to remove from the expected headers. */
  removeHeaders?: string[];
  /** Decoded body bytes and the content type that decides how they are stored. */
  body?: { bytes: Buffer; contentType: string | undefined };
}

/** One YAML file opened for editing. */
export class YamlFileEditor {
  readonly file: string;
  private readonly text: string;
  private readonly docs: Document.Parsed[];
  private readonly lineCounter = new LineCounter();
  private readonly changed = new Set<number>();
  private readonly indent: number;
  /** Body scalars set by replaceResponse, checked by reading the text back (see documentText). */
  private readonly bodies = new Map<number, Scalar<string>>();

  constructor(file: string, text: string) {
    this.file = file;
    this.text = text;
    const all = parseAllDocuments(text, { lineCounter: this.lineCounter, keepSourceTokens: false });
    this.docs = Array.isArray(all) ? all : [];
    const bad = this.docs.find((d) => d.errors.length > 0);
    if (bad) throw new Error(`${file}: YAML syntax error: ${bad.errors[0]!.message.split('\n', 1)[0]}`);
    this.indent = detectIndent(text);
  }

  static open(file: string): YamlFileEditor {
    return new YamlFileEditor(file, readFileSync(file, 'utf8'));
  }

  /** True when an edit changed something. */
  get dirty(): boolean {
    return this.changed.size > 0;
  }

  /** Index of the document whose content starts on `line` (Mock.line), else of the one named `name`. */
  findDocument(line: number | undefined, name?: string): number {
    if (line !== undefined) {
      const i = this.docs.findIndex((d) => d.contents !== null && positionOf(d, this.lineCounter, []).line === line);
      if (i >= 0) return i;
    }
    if (name !== undefined) {
      const i = this.docs.findIndex((d) => d.contents !== null && d.get('name') === name);
      if (i >= 0) return i;
    }
    throw new Error(
      `${this.file}: no document${line !== undefined ? ` at line ${line}` : ''}${name ? ` named ${name}` : ''}`,
    );
  }

  /** The first document with content (a test file's test). */
  private firstDocument(): number {
    const i = this.docs.findIndex((d) => d.contents !== null);
    if (i < 0) throw new Error(`${this.file}: empty file`);
    return i;
  }

  /**
   * Adds `key: []` entries to a test's `spec.assertions.noise` (created where missing, after
   * `objects` or `resp` as Keploy orders them). Returns the keys added; keys already there
   * (compared case-insensitively) are left as they are.
   */
  addTestNoise(keys: readonly string[]): string[] {
    const di = this.firstDocument();
    const doc = this.docs[di]!;
    const spec = mapAt(doc.contents, 'spec');
    if (!spec) throw new Error(`${this.file}: no spec map`);
    let assertions = mapAt(spec, 'assertions');
    if (!assertions) {
      assertions = new YAMLMap();
      insertPair(spec, doc.createPair('assertions', assertions), ['objects', 'resp', 'req']);
    }
    let noise = mapAt(assertions, 'noise');
    if (!noise || (noise.flow === true && noise.items.length === 0)) {
      const fresh = new YAMLMap();
      if (noise) replaceValue(assertions, 'noise', fresh);
      else assertions.items.push(doc.createPair('noise', fresh));
      noise = fresh;
    }
    const have = new Set(noise.items.map((p) => keyOf(p).toLowerCase()));
    const added: string[] = [];
    for (const key of keys) {
      if (have.has(key.toLowerCase())) continue;
      have.add(key.toLowerCase());
      noise.items.push(doc.createPair(key, new YAMLSeq()));
      added.push(key);
    }
    if (added.length > 0) this.changed.add(di);
    return added;
  }

  /**
   * Adds request-body paths to a mock's noise in Keploy's shape: a top-level `noise:` map whose
   * `req` lists the paths ("body.nonce"). A legacy `noise:` list (value regexes) becomes that
   * map's `value`. Returns the paths added.
   */
  addMockNoise(docIndex: number, paths: readonly string[]): string[] {
    const doc = this.docs[docIndex]!;
    const root = doc.contents;
    if (!isMap(root)) throw new Error(`${this.file}: document ${docIndex + 1} is not a map`);
    const existing = root.get('noise', true);
    let noise: YAMLMap;
    if (isMap(existing) && !(existing.flow === true && existing.items.length === 0)) noise = existing;
    else {
      noise = new YAMLMap();
      if (isSeq(existing) && existing.items.length > 0) noise.items.push(doc.createPair('value', existing));
      if (existing !== undefined) replaceValue(root, 'noise', noise);
      else insertPair(root, doc.createPair('noise', noise), ['spec']);
    }
    const req: unknown = noise.get('req', true);
    let seq: YAMLSeq;
    if (isSeq(req) && !(req.flow === true && req.items.length === 0)) seq = req;
    else {
      seq = new YAMLSeq();
      if (req !== undefined) replaceValue(noise, 'req', seq);
      else noise.items.unshift(doc.createPair('req', seq));
    }
    const have = new Set(seq.items.map((n) => String(isScalar(n) ? n.value : n).toLowerCase()));
    const added: string[] = [];
    for (const p of paths) {
      if (have.has(p.toLowerCase())) continue;
      have.add(p.toLowerCase());
      seq.items.push(doc.createNode(p));
      added.push(p);
    }
    if (added.length > 0) this.changed.add(docIndex);
    return added;
  }

  /**
   * Replaces parts of a test's expected response. Header values keep their key's spelling and
   * place; new headers go at the end. The body is stored as the writer stores it (JSON
   * pretty-printed in a block scalar, base64 for binary).
   */
  replaceResponse(change: NewResponse): void {
    const di = this.firstDocument();
    const doc = this.docs[di]!;
    const resp = mapAt(mapAt(doc.contents, 'spec'), 'resp');
    if (!resp) throw new Error(`${this.file}: no spec.resp map`);
    if (change.status !== undefined && resp.get('status_code') !== change.status) {
      replaceValue(resp, 'status_code', doc.createNode(change.status));
      if (resp.has('status_message'))
        replaceValue(resp, 'status_message', doc.createNode(STATUS_CODES[change.status] ?? ''));
    }
    if ((change.setHeaders?.length ?? 0) > 0 || (change.removeHeaders?.length ?? 0) > 0) {
      let header = mapAt(resp, 'header');
      if (!header || (header.flow === true && header.items.length === 0)) {
        const fresh = new YAMLMap();
        if (header) replaceValue(resp, 'header', fresh);
        else insertPair(resp, doc.createPair('header', fresh), ['status_code']);
        header = fresh;
      }
      for (const name of change.removeHeaders ?? []) {
        const i = header.items.findIndex((p) => keyOf(p).toLowerCase() === name.toLowerCase());
        if (i >= 0) header.items.splice(i, 1);
      }
      const grouped = new Map<string, { name: string; values: string[] }>();
      for (const [name, value] of change.setHeaders ?? []) {
        const g = grouped.get(name.toLowerCase());
        if (g) g.values.push(value);
        else grouped.set(name.toLowerCase(), { name, values: [value] });
      }
      for (const [lower, { name, values }] of grouped) {
        const value = values.length === 1 ? doc.createNode(values[0]!) : doc.createNode(values);
        const pair = header.items.find((p) => keyOf(p).toLowerCase() === lower);
        if (pair) pair.value = value;
        else header.items.push(doc.createPair(name, value));
      }
    }
    if (change.body) {
      const stored = encodeBody(change.body.bytes, change.body.contentType);
      const node = new Scalar(stored.body);
      node.type = stored.body === '' ? Scalar.QUOTE_DOUBLE : bodyScalarType(stored.body);
      this.bodies.set(di, node);
      if (resp.has('body')) replaceValue(resp, 'body', node);
      else insertPair(resp, doc.createPair('body', node), ['header', 'status_code']);
      if (stored.body_encoding) {
        if (resp.has('body_encoding')) replaceValue(resp, 'body_encoding', doc.createNode(stored.body_encoding));
        else insertPair(resp, doc.createPair('body_encoding', stored.body_encoding), ['body']);
      } else resp.delete('body_encoding');
      resp.delete('body_content_encoded');
    }
    this.changed.add(di);
  }

  /** The file's new text: unchanged documents byte for byte, edited ones written by the library. */
  toString(): string {
    if (this.changed.size === 0) return this.text;
    let out = '';
    for (let i = 0; i < this.docs.length; i++) {
      const start = i === 0 ? 0 : this.docs[i]!.range[0];
      const end = i + 1 < this.docs.length ? this.docs[i + 1]!.range[0] : this.text.length;
      if (!this.changed.has(i)) {
        out += this.text.slice(start, end);
        continue;
      }
      let text = this.documentText(i);
      // The library writes `---` for every document after the first; the original slice starts at it.
      if (i > 0 && !this.text.slice(start, end).startsWith('---') && text.startsWith('---\n')) text = text.slice(4);
      out += text;
    }
    return out;
  }

  /**
   * One edited document as text. A body block scalar that needs an indentation indicator (text
   * starting with blanks) comes out wrong from the library at indentations other than 2, so the
   * body is read back and, if it differs, written double-quoted (always exact).
   */
  private documentText(i: number): string {
    const doc = this.docs[i]!;
    const opts = { indent: this.indent, lineWidth: 0, minContentWidth: 0 };
    const text = doc.toString(opts);
    const body = this.bodies.get(i);
    if (!body || body.type === Scalar.QUOTE_DOUBLE) return text;
    const back = (parseDocument(text).toJS() as { spec?: { resp?: { body?: unknown } } } | null)?.spec?.resp?.body;
    if (back === body.value) return text;
    body.type = Scalar.QUOTE_DOUBLE;
    return doc.toString(opts);
  }

  /** Writes the file (temp file + fsync + rename) when something changed. Returns whether it wrote. */
  save(): boolean {
    if (this.changed.size === 0) return false;
    writeFileAtomic(this.file, this.toString());
    this.changed.clear();
    return true;
  }
}

/** Indentation of the first nested line under a top-level key: 2 (tlsrec) or 4 (Keploy). */
export function detectIndent(text: string): number {
  const m = /^[A-Za-z_][^\n]*:[ \t]*\n( +)\S/m.exec(text);
  const n = m ? m[1]!.length : 2;
  return n >= 1 && n <= 8 ? n : 2;
}

function keyOf(p: Pair<unknown, unknown>): string {
  return isScalar(p.key) ? String(p.key.value) : String(p.key);
}

function mapAt(node: unknown, key: string): YAMLMap | undefined {
  if (!isMap(node)) return undefined;
  const v = node.get(key, true);
  return isMap(v) ? v : undefined;
}

/** Sets the value of an existing key, keeping the key node (and the comments on it). */
function replaceValue(map: YAMLMap, key: string, value: unknown): void {
  const pair = map.items.find((p) => isPair(p) && keyOf(p) === key);
  if (pair) pair.value = value;
  else map.set(key, value);
}

/** Inserts after the first of `after` that exists, else at the end. */
function insertPair(map: YAMLMap, pair: Pair, after: readonly string[]): void {
  for (const key of after) {
    const i = map.items.findIndex((p) => keyOf(p) === key);
    if (i >= 0) {
      map.items.splice(i + 1, 0, pair);
      return;
    }
  }
  map.items.push(pair);
}

function writeFileAtomic(file: string, data: string): void {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  try {
    const fd = openSync(tmp, 'w', 0o644);
    try {
      writeSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // never created
    }
    throw new OutputError(`cannot write ${file}: ${causeText(err)}`, {
      stage: 'edit files',
      hint: 'check that the test directory is writable',
      cause: err,
    });
  }
}
