// YAML parsing and JSON Schema validation with positions: every problem becomes
// `file:line:column: message`, pointing at the node that is wrong (or the key of the map that
// lacks a field). Nothing here throws for bad input; callers collect problems from all files.

import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { isMap, isPair, isScalar, isSeq, LineCounter, parseAllDocuments, type Document, type Node } from 'yaml';
import { CORE_SCHEMA, load as loadFast } from 'js-yaml';
import type { JsonSchema } from './schemas.js';

export interface Problem {
  file: string;
  line: number;
  col: number;
  message: string;
}

export function formatProblem(p: Problem): string {
  return `${p.file}:${p.line}:${p.col}: ${p.message}`;
}

export type YamlPath = ReadonlyArray<string | number>;

export interface ParsedFile {
  file: string;
  lineCounter: LineCounter;
  /** Documents without syntax errors and with content (empty documents are dropped). */
  docs: Document.Parsed[];
  problems: Problem[];
}

export function parseYaml(file: string, source: string): ParsedFile {
  const lineCounter = new LineCounter();
  const all = parseAllDocuments(source, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const problems: Problem[] = [];
  const docs: Document.Parsed[] = [];
  // parseAllDocuments returns an EmptyStream (not an array) for a file with no documents
  for (const doc of Array.isArray(all) ? all : []) {
    if (doc.errors.length > 0) {
      for (const err of doc.errors) {
        const { line, col } = lineCounter.linePos(err.pos[0]);
        problems.push({ file, line, col, message: `YAML syntax error: ${firstLine(err.message)}` });
      }
      continue;
    }
    if (isEmptyDocument(doc)) continue;
    docs.push(doc);
  }
  return { file, lineCounter, docs, problems };
}

/**
 * A document with no content: what a trailing `---` (or one followed only by comments) leaves.
 * The `yaml` library gives it an empty plain scalar; an explicit `null` or `~` is content.
 */
function isEmptyDocument(doc: Document.Parsed): boolean {
  const c = doc.contents;
  if (c === null) return true;
  return (
    isScalar(c) && c.value === null && (c.source === undefined || c.source === '') && c.range?.[0] === c.range?.[1]
  );
}

/**
 * The value of a file that is plainly one well-formed document, parsed fast (js-yaml with the
 * YAML 1.2 core schema, which reads our files exactly as the \`yaml\` library does; ~5x faster,
 * measured: 1,000 test files in 90 ms instead of 500 ms). Undefined for anything else — syntax
 * errors, several documents, tags, an empty file — and then the caller parses with parseYaml,
 * which gives every problem its position.
 */
export function parseFastOrUndefined(source: string): unknown {
  try {
    const value = loadFast(source, { schema: CORE_SCHEMA, json: false });
    return value === null || value === undefined ? undefined : value;
  } catch {
    return undefined;
  }
}

/** Does the value satisfy the schema? (No positions: see schemaProblems for those.) */
export function isSchemaValid(schema: JsonSchema, value: unknown): boolean {
  return validatorFor(schema)(value) === true;
}

function firstLine(s: string): string {
  return s.split('\n', 1)[0]!.replace(/ at line \d+, column \d+:?$/, '');
}

/** Start of the node at `path` (its key with `atKey`), or of the deepest ancestor that exists. */
export function positionOf(
  doc: Document.Parsed,
  lc: LineCounter,
  path: YamlPath,
  atKey = false,
): { line: number; col: number } {
  let node: unknown = doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]!;
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && keyText(p.key) === String(seg));
      if (!pair) break;
      const keyStart = rangeStart(pair.key);
      const valueStart = rangeStart(pair.value);
      if (last && atKey) {
        offset = keyStart ?? offset;
        break;
      }
      offset = valueStart ?? keyStart ?? offset;
      node = pair.value;
    } else if (isSeq(node)) {
      const item = node.items[Number(seg)];
      if (item === undefined) break;
      offset = rangeStart(item) ?? offset;
      node = item;
    } else break;
  }
  return lc.linePos(offset);
}

function rangeStart(n: unknown): number | undefined {
  const r = (n as Node | null | undefined)?.range;
  return r ? r[0] : undefined;
}

function keyText(k: unknown): string {
  return isScalar(k) ? String(k.value) : String(k);
}

export function dottedPath(path: YamlPath): string {
  let s = '';
  for (const seg of path) s += typeof seg === 'number' ? `[${seg}]` : s === '' ? seg : `.${seg}`;
  return s;
}

const ajv = new Ajv({ allErrors: true, verbose: true, strict: false });
const compiled = new Map<JsonSchema, ValidateFunction>();

function validatorFor(schema: JsonSchema): ValidateFunction {
  let v = compiled.get(schema);
  if (!v) {
    v = ajv.compile(schema);
    compiled.set(schema, v);
  }
  return v;
}

/** Schema problems of one document, each at the offending node. */
export function schemaProblems(
  file: string,
  doc: Document.Parsed,
  lc: LineCounter,
  schema: JsonSchema,
  value: unknown,
): Problem[] {
  const validate = validatorFor(schema);
  if (validate(value)) return [];
  const out: Problem[] = [];
  const seen = new Set<string>();
  for (const err of validate.errors ?? []) {
    const described = describeError(err);
    if (!described) continue;
    const { line, col } = positionOf(doc, lc, described.path, described.atKey);
    const where = dottedPath(described.label ?? described.path);
    const message = where === '' ? described.message : `${where}: ${described.message}`;
    const id = `${line}:${col}:${message}`;
    if (seen.has(id)) continue;
    seen.add(id);
    out.push({ file, line, col, message });
  }
  return out;
}

function pathOf(instancePath: string): Array<string | number> {
  if (instancePath === '') return [];
  return instancePath
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

interface Described {
  /** Where to point. */
  path: Array<string | number>;
  /** What to name in the message, when not `path`. */
  label?: Array<string | number>;
  atKey: boolean;
  message: string;
}

function describeError(err: ErrorObject): Described | undefined {
  const path = pathOf(err.instancePath);
  const found = describeValue(err.data);
  const p = err.params as Record<string, unknown>;
  switch (err.keyword) {
    case 'if':
      return undefined; // the failing "then" branch reports the details
    case 'required':
      return { path, atKey: true, message: `missing required field "${String(p.missingProperty)}"` };
    case 'additionalProperties':
      return {
        path: [...path, String(p.additionalProperty)],
        label: path,
        atKey: true,
        message: `unknown field "${String(p.additionalProperty)}"`,
      };
    case 'type':
      return { path, atKey: false, message: `expected ${typeNames(p.type)}, found ${found}` };
    case 'enum':
      return {
        path,
        atKey: false,
        message: `expected ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(' or ')}, found ${found}`,
      };
    case 'const':
      return { path, atKey: false, message: `expected ${JSON.stringify(p.allowedValue)}, found ${found}` };
    case 'minimum':
      return { path, atKey: false, message: `expected a value of at least ${String(p.limit)}, found ${found}` };
    case 'maximum':
      return { path, atKey: false, message: `expected a value of at most ${String(p.limit)}, found ${found}` };
    case 'exclusiveMinimum':
      return { path, atKey: false, message: `expected a value above ${String(p.limit)}, found ${found}` };
    case 'minLength':
      return { path, atKey: false, message: `expected a non-empty string, found ${found}` };
    case 'pattern':
      if (path[path.length - 1] === 'version') {
        return { path, atKey: false, message: `expected "api.keploy.io/v1beta1", found ${found}` };
      }
      return { path, atKey: false, message: `expected text matching /${String(p.pattern)}/, found ${found}` };
    default:
      return { path, atKey: false, message: `${err.message ?? 'invalid'}, found ${found}` };
  }
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true/false',
  object: 'a map',
  array: 'a list',
  null: 'nothing',
};

function typeNames(t: unknown): string {
  const list = Array.isArray(t) ? t : String(t).split(',');
  const names = list.map((x) => TYPE_NAMES[String(x)] ?? String(x));
  return names.length <= 1 ? names.join('') : names.slice(0, -1).join(', ') + ' or ' + names[names.length - 1];
}

export function describeValue(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 37) + '...' : v);
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  return String(v);
}
