// References in test and mock files, in Keploy's template syntax (Go text/template, as its
// `templatize` and `sanitize` write them):
//
//   {{ .token }}              a variable: captured from a response, sent in later requests
//   {{ .secret.X_API_KEY }}   a secret: never written to the files, supplied at replay
//                             (TLSREC_SECRET_X_API_KEY, or the secrets file named in tlsrec.yaml)
//
// Keploy's typed forms ({{string .token}}, {{int .id}}, {{float .x}}) are read as the same
// reference. Pure functions; no I/O.

export type Ref = { kind: 'var'; name: string } | { kind: 'secret'; name: string };

/** One reference: `{{ .name }}`, `{{ .secret.NAME }}`, optionally with Keploy's string/int/float. */
const REF_SOURCE = String.raw`\{\{\s*(?:(?:string|int|float)\s+)?\.((?:secret\.)?[A-Za-z_][A-Za-z0-9_]*)\s*\}\}`;

export function refPattern(): RegExp {
  return new RegExp(REF_SOURCE, 'g');
}

const WHOLE_REF = new RegExp(`^${REF_SOURCE}$`);

export function varRef(name: string): string {
  return `{{ .${name} }}`;
}

export function secretRef(name: string): string {
  return `{{ .secret.${name} }}`;
}

function toRef(inner: string): Ref {
  return inner.startsWith('secret.') ? { kind: 'secret', name: inner.slice(7) } : { kind: 'var', name: inner };
}

/** True when `text` holds at least one reference (cheap check first: most strings have no braces). */
export function hasRef(text: string): boolean {
  return text.includes('{{') && refPattern().test(text);
}

/** The reference when `text` is exactly one, else undefined. */
export function wholeRef(text: string): Ref | undefined {
  const m = WHOLE_REF.exec(text.trim());
  return m ? toRef(m[1]!) : undefined;
}

export function refsIn(text: string): Ref[] {
  if (!text.includes('{{')) return [];
  return [...text.matchAll(refPattern())].map((m) => toRef(m[1]!));
}

export function refKey(ref: Ref): string {
  return ref.kind === 'secret' ? `secret.${ref.name}` : ref.name;
}

/**
 * `text` with every reference that `resolve` knows replaced by its value (passed through
 * `encode`, e.g. JSON or URL escaping); unknown references stay as written.
 */
export function substitute(
  text: string,
  resolve: (ref: Ref) => string | undefined,
  encode: (value: string) => string = (v) => v,
): string {
  if (!text.includes('{{')) return text;
  return text.replace(refPattern(), (whole, inner: string) => {
    const v = resolve(toRef(inner));
    return v === undefined ? whole : encode(v);
  });
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Matches `actual` against a template: literal parts exactly, each reference any non-empty text.
 * Returns what each reference stood for (by refKey), or undefined when it does not match.
 */
export function matchTemplate(template: string, actual: string): Map<string, string> | undefined {
  const refs: Ref[] = [];
  let source = '';
  let last = 0;
  for (const m of template.matchAll(refPattern())) {
    source += escapeRegex(template.slice(last, m.index)) + '([\\s\\S]+?)';
    refs.push(toRef(m[1]!));
    last = m.index + m[0].length;
  }
  source += escapeRegex(template.slice(last));
  const m = new RegExp(`^${source}$`).exec(actual);
  if (!m) return undefined;
  const out = new Map<string, string>();
  refs.forEach((r, i) => out.set(refKey(r), m[i + 1]!));
  return out;
}

/** True when `actual` fits the template (a reference stands for any non-empty text). */
export function templateMatches(template: string, actual: string): boolean {
  return matchTemplate(template, actual) !== undefined;
}
