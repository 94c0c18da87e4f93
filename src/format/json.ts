// JSON bodies are stored pretty-printed (readable, line-by-line diffs) and sent minified.
// Both directions only add or remove insignificant whitespace: numbers, strings and key order are
// copied character for character, so big integers (snowflake ids) and escapes survive exactly,
// which JSON.parse + JSON.stringify would not guarantee.

/** True for application/json, text/json and any +json media type. */
export function isJsonContentType(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const mt = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return mt === 'application/json' || mt === 'text/json' || mt.endsWith('+json');
}

function parseOrUndefined(text: string): { value: unknown } | undefined {
  try {
    return { value: JSON.parse(text) as unknown };
  } catch {
    return undefined;
  }
}

/**
 * A body treated as JSON, parsed: it parses, and either the content type says JSON or, without a
 * content type, it is an object or array. Writer and reader share this rule so that what the writer
 * pretty-prints is exactly what the reader minifies. Undefined for anything else.
 */
export function parseJsonBody(text: string, contentType: string | undefined): { value: unknown } | undefined {
  if (text.trim() === '') return undefined;
  if (!isJsonContentType(contentType)) {
    if (contentType !== undefined && contentType.trim() !== '') return undefined;
    const first = text.trimStart()[0];
    if (first !== '{' && first !== '[') return undefined;
  }
  return parseOrUndefined(text);
}

/** Whether a body should be treated as JSON (see parseJsonBody). */
export function looksLikeJson(text: string, contentType: string | undefined): boolean {
  return parseJsonBody(text, contentType) !== undefined;
}

/** Removes whitespace outside strings. The input must be valid JSON. */
export function minifyJson(text: string): string {
  let out = '';
  let inString = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped char
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
      out += text.slice(start, i);
      start = i + 1;
    }
  }
  return out + text.slice(start);
}

/** Indents valid JSON with 2 spaces, in the layout of JSON.stringify(v, null, 2), tokens untouched. */
export function prettyJson(text: string, parsed: { value: unknown } | undefined = parseOrUndefined(text)): string {
  const s = minifyJson(text);
  // Fast path: when the engine writes the value back as the very same text (no big or oddly
  // written numbers, no unusual escapes), its own indenter gives the identical layout.
  // (`parsed` is the value of `text`, passed in by callers that parsed it already.)
  if (parsed !== undefined && JSON.stringify(parsed.value) === s) return JSON.stringify(parsed.value, null, 2);
  const parts: string[] = [];
  let depth = 0;
  const nl = (): string => '\n' + '  '.repeat(depth);
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch === '"') {
      let j = i + 1;
      while (j < s.length && s[j] !== '"') j += s[j] === '\\' ? 2 : 1;
      parts.push(s.slice(i, j + 1));
      i = j;
    } else if (ch === '{' || ch === '[') {
      const close = ch === '{' ? '}' : ']';
      if (s[i + 1] === close) {
        parts.push(ch + close);
        i++;
      } else {
        depth++;
        parts.push(ch + nl());
      }
    } else if (ch === '}' || ch === ']') {
      depth--;
      parts.push(nl() + ch);
    } else if (ch === ',') {
      parts.push(',' + nl());
    } else if (ch === ':') {
      parts.push(': ');
    } else {
      // number, true, false, null: copy the run as is
      let j = i;
      while (j < s.length && !'{}[],:"'.includes(s[j]!)) j++;
      parts.push(s.slice(i, j));
      i = j - 1;
    }
  }
  return parts.join('');
}
