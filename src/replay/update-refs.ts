// What `tlsrec test --update` writes for the app's new answer, kept to the same rules as record:
// where the file holds a reference ({{ .token }}, {{ .secret.NAME }}) and the app's value still
// fits it, the reference stays (a captured login token keeps flowing to later tests); secrets in
// a new body (a secret-named field, a credential format) become references as record writes
// them, never clear text in the file. (Secret headers: see plannedUpdate in update.ts.)

import type { HeaderList } from '../model/exchange.js';
import type { BodyValue } from '../format/types.js';
import { hasRef, matchTemplate } from '../format/templates.js';
import type { RecordingRefs } from '../format/variables.js';
import { isBinaryContentType } from '../format/stored-body.js';

/** `actual` (a JSON or text body) with the values the recorded body held as references put back as those references. */
export function keepBodyReferences(recorded: BodyValue, actual: Buffer): Buffer {
  if (recorded.kind === 'binary' || recorded.kind === 'empty') return actual;
  const template = recorded.bytes.toString('utf8');
  if (!hasRef(template)) return actual;
  const text = actual.toString('utf8');
  if (recorded.kind !== 'json') return matchTemplate(template, text) ? recorded.bytes : actual;
  let want: unknown;
  let got: unknown;
  try {
    want = JSON.parse(template);
    got = JSON.parse(text);
  } catch {
    return actual;
  }
  const back = new Map<string, string>();
  const walk = (w: unknown, g: unknown): void => {
    if (typeof w === 'string') {
      if (typeof g === 'string' && hasRef(w) && matchTemplate(w, g)) back.set(g, w);
    } else if (Array.isArray(w)) {
      if (Array.isArray(g)) w.forEach((x, i) => walk(x, g[i]));
    } else if (w !== null && typeof w === 'object' && g !== null && typeof g === 'object' && !Array.isArray(g)) {
      for (const [k, x] of Object.entries(w as Record<string, unknown>)) walk(x, (g as Record<string, unknown>)[k]);
    }
  };
  walk(want, got);
  if (back.size === 0) return actual;
  // Replaced as JSON string tokens, so the rest of the answer (numbers, layout) stays as the app sent it.
  let out = text;
  for (const [value, ref] of back) out = out.split(JSON.stringify(value)).join(JSON.stringify(ref));
  return Buffer.from(out, 'utf8');
}

/** The app's header values, each the recorded reference where the recorded value of that name was one and it fits. */
export function keepHeaderReferences(recorded: HeaderList, actual: HeaderList): HeaderList {
  return actual.map(([name, value]): [string, string] => {
    const lower = name.toLowerCase();
    const ref = recorded.find(
      ([n, v]) => n.toLowerCase() === lower && hasRef(v) && matchTemplate(v, value) !== undefined,
    );
    return ref ? [name, ref[1]] : [name, value];
  });
}

/**
 * The app's body as the file gets it: recorded references kept, then record's rules for what is
 * left (a new secret-named field becomes a captured variable, a credential format a secret reference).
 */
export function answerBodyForFile(
  recorded: BodyValue,
  actual: Buffer,
  contentType: string | undefined,
  refs: RecordingRefs,
): Buffer {
  const kept = keepBodyReferences(recorded, actual);
  if (kept.length === 0 || isBinaryContentType(contentType)) return kept;
  const text = kept.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(kept)) return kept; // not UTF-8 text: written as base64, nothing to look for
  const written = refs.responseBody(text, contentType, 'test');
  return written === text ? kept : Buffer.from(written, 'utf8');
}
