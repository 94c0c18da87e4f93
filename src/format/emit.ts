// A small YAML emitter for the fixed-shape documents renderYaml receives (nested maps with string
// keys, arrays, strings, finite numbers, booleans, null). The `yaml` library builds a Document per
// exchange, ~0.25 ms each, which limits how fast recording can go; this writes the same block
// style directly. It only ever chooses a form it knows reads back exactly: plain scalars for a
// conservative set of strings, double quotes (JSON escapes, which YAML accepts) for everything
// else. Anything outside those shapes throws UnsupportedValue so the caller can use the library.

/** A value the emitter does not write (Buffer, bigint, undefined in a list, NaN, ...). */
export class UnsupportedValue extends Error {
  constructor(what: string) {
    super(`emitYaml: cannot write ${what}`);
    this.name = 'UnsupportedValue';
  }
}

/**
 * Paths whose string values are written by `blockScalar` (bodies, curl): `true` marks the leaf,
 * an object descends one key. Kept as a tree so that walking it costs nothing per node.
 */
export interface BlockPaths {
  readonly [key: string]: BlockPaths | true;
}

/**
 * Text that follows `key:` for a string at a block path, including the leading space and the final
 * newline; `indent` is the indentation of the key. Undefined: write it as any other string.
 */
export type BlockScalarWriter = (value: string, indent: string) => string | undefined;

export interface EmitOptions {
  blocks?: BlockPaths;
  blockScalar?: BlockScalarWriter;
}

/** Block-style YAML for `value` (2-space indentation, keys in insertion order), ending with a newline. */
export function emitYaml(value: unknown, opts: EmitOptions = {}): string {
  const w: Writer = { blockScalar: opts.blockScalar };
  if (isMapLike(value)) {
    const keys = Object.keys(value);
    if (keys.length > 0) return emitMap(w, value, keys, '', opts.blocks);
  } else if (Array.isArray(value) && value.length > 0) {
    return emitSeq(w, value, '');
  }
  return afterKey(w, value, '', undefined).slice(1);
}

interface Writer {
  blockScalar: BlockScalarWriter | undefined;
}

/** Only plain objects are maps: a Buffer, Date or Map would silently lose its meaning. */
function isMapLike(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Implicit keys may be at most 1024 characters (YAML 1.2, 7.4.1); longer ones use `? key`. */
const MAX_IMPLICIT_KEY = 1000;

/** Entries of a non-empty map, each line indented by `indent`. */
function emitMap(
  w: Writer,
  obj: Record<string, unknown>,
  keys: string[],
  indent: string,
  blocks: BlockPaths | undefined,
): string {
  let out = '';
  for (const key of keys) {
    const v = obj[key];
    // Like the library and JSON: a map entry whose value is undefined is not written.
    if (v === undefined) continue;
    const k = keyText(key);
    const sub = blocks?.[key];
    let rest: string | undefined;
    if (sub === true && typeof v === 'string' && w.blockScalar) rest = w.blockScalar(v, indent);
    if (rest === undefined) rest = afterKey(w, v, indent, typeof sub === 'object' ? sub : undefined);
    out += k.length > MAX_IMPLICIT_KEY ? `${indent}? ${k}\n${indent}:${rest}` : `${indent}${k}:${rest}`;
  }
  if (out === '') throw new UnsupportedValue('a map whose values are all undefined');
  return out;
}

/** Items of a non-empty list, each `- ` at `indent`. */
function emitSeq(w: Writer, arr: readonly unknown[], indent: string): string {
  let out = '';
  const inner = indent + '  ';
  for (let i = 0; i < arr.length; i++) {
    // A hole or undefined has no YAML form that reads back as undefined.
    if (!(i in arr)) throw new UnsupportedValue('a sparse array');
    const v = arr[i];
    let nested: string | undefined;
    if (isMapLike(v)) {
      const keys = Object.keys(v);
      if (keys.length > 0) nested = emitMap(w, v, keys, inner, undefined);
    } else if (Array.isArray(v) && v.length > 0) {
      nested = emitSeq(w, v, inner);
    }
    // Compact form: the first line of a nested collection goes right after the dash.
    out +=
      nested !== undefined
        ? `${indent}- ${nested.slice(inner.length)}`
        : `${indent}-${afterKey(w, v, indent, undefined)}`;
  }
  return out;
}

/** What follows `key:` or `-`: ` scalar\n`, ` {}\n`, or a newline and the nested block one level deeper. */
function afterKey(w: Writer, v: unknown, indent: string, blocks: BlockPaths | undefined): string {
  switch (typeof v) {
    case 'string':
      return ` ${scalarText(v)}\n`;
    case 'number':
      return ` ${numberText(v)}\n`;
    case 'boolean':
      return v ? ' true\n' : ' false\n';
    case 'object': {
      if (v === null) return ' null\n';
      if (Array.isArray(v)) return v.length === 0 ? ' []\n' : '\n' + emitSeq(w, v, indent + '  ');
      if (!isMapLike(v)) throw new UnsupportedValue(`an object of class ${(v as object).constructor?.name ?? '?'}`);
      const keys = Object.keys(v);
      return keys.length === 0 ? ' {}\n' : '\n' + emitMap(w, v, keys, indent + '  ', blocks);
    }
    default:
      throw new UnsupportedValue(`a value of type ${typeof v}`);
  }
}

function numberText(n: number): string {
  if (!Number.isFinite(n)) throw new UnsupportedValue(String(n));
  // js-yaml reads the integer -0 as 0; as a float both libraries keep the sign
  if (Object.is(n, -0)) return '-0.0';
  // String(n) is the shortest text that parses back to the same double, and is YAML int/float syntax
  // ("12", "1.5", "1e+21", "5e-7").
  return String(n);
}

/**
 * Plain scalars are only written for printable ASCII that no YAML reader could take for anything
 * but this string: not starting with an indicator or a space, no `: ` or ` #`, no trailing space
 * or colon. Everything else is double-quoted.
 */
const PLAIN_VALUE = /^(?![-?:,[\]{}#&*!|>'"%@`])[\x21-\x7e][\x20-\x7e]*$/;
const PLAIN_VALUE_BAD = /: | #|[ :]$|^\.\.\./;
/** Keys are stricter still (header names, noise keys like header.Date or body.a.b, url_params names). */
const PLAIN_KEY = /^[A-Za-z0-9_/][A-Za-z0-9_./@$+=-]*$/;

/**
 * Strings a YAML 1.2 core, js-yaml core or YAML 1.1 reader could resolve to null, a boolean or a
 * number (ints with signs, bases 2/8/16, underscores and 1.1's base 60 like 1234:7:1; floats,
 * .inf, .nan, even a lone "." which the yaml library's 1.1 schema reads as NaN), plus 1.1's merge
 * and value keys. Deliberately broader than any one schema: quoting costs nothing.
 * Single-letter y/n stay plain, as the library wrote them (url_params named y): only 1.1 readers
 * of the full type repository (Go yaml.v2, yaml's 1.1 schema) take them for booleans.
 */
const NOT_A_STRING =
  /^(?:~|null|true|false|yes|no|on|off|<<|=|[-+]?(?:0[box][0-9a-f_]+|[0-9][0-9_]*(?::[0-9_]+)*(?:\.[0-9_]*)?(?:e[-+]?[0-9]+)?|\.[0-9_]*(?:e[-+]?[0-9]+)?|\.inf|\.nan))$/i;

function isPlain(s: string): boolean {
  return PLAIN_VALUE.test(s) && !PLAIN_VALUE_BAD.test(s) && !NOT_A_STRING.test(s);
}

function scalarText(s: string): string {
  return isPlain(s) ? s : doubleQuoted(s);
}

function keyText(s: string): string {
  return PLAIN_KEY.test(s) && !NOT_A_STRING.test(s) ? s : doubleQuoted(s);
}

/**
 * Characters JSON.stringify leaves as they are but YAML must not see raw: C1 controls and DEL
 * (not printable in YAML), NEL and the Unicode line/paragraph separators (line breaks to YAML 1.1
 * readers), the BOM and the non-characters U+FFFE/U+FFFF.
 */
const YAML_UNSAFE_IN_JSON = /[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]/;
const YAML_UNSAFE_IN_JSON_ALL = new RegExp(YAML_UNSAFE_IN_JSON.source, 'g');

/**
 * A double-quoted YAML string: JSON's escapes are all YAML escapes (\" \\ \/ \b \f \n \r \t
 * \uXXXX, and JSON.stringify escapes lone surrogates), so only the characters above need more.
 */
export function doubleQuoted(s: string): string {
  const json = JSON.stringify(s);
  return YAML_UNSAFE_IN_JSON.test(json)
    ? json.replace(YAML_UNSAFE_IN_JSON_ALL, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'))
    : json;
}
