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

/**
 * Whether a body is treated as JSON: it parses, and either the content type says JSON or, without
 * a content type, it is an object or array. Writer and reader share this rule so that what the
 * writer pretty-prints is exactly what the reader minifies.
 */
export function looksLikeJson(text: string, contentType: string | undefined): boolean {
  if (text.trim() === '') return false;
  if (!isJsonContentType(contentType)) {
    if (contentType !== undefined && contentType.trim() !== '') return false;
    const first = text.trimStart()[0];
    if (first !== '{' && first !== '[') return false;
  }
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** Removes whitespace outside strings. The input must be valid JSON. */
export function minifyJson(text: string): string {
  let out = '';
  let inString = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped char
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (isJsonSpace(c)) {
      out += text.slice(start, i);
      start = i + 1;
    }
  }
  return out + text.slice(start);
}

/** "\n" and the indentation of each depth, built as deeper levels are met. */
const NEWLINE_AT_DEPTH: string[] = ['\n'];

function newlineAt(depth: number): string {
  while (NEWLINE_AT_DEPTH.length <= depth) NEWLINE_AT_DEPTH.push(NEWLINE_AT_DEPTH[NEWLINE_AT_DEPTH.length - 1]! + '  ');
  return NEWLINE_AT_DEPTH[depth]!;
}

function isJsonSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/**
 * Indents valid JSON (in any layout) with 2 spaces, in the layout of JSON.stringify(v, null, 2),
 * tokens untouched. One pass over the text, copying runs between structural characters: about
 * half the time of minifying, parsing and stringifying again, and it keeps big integers as written
 * without a second path. The input must be valid JSON (see looksLikeJson).
 */
export function prettyJson(text: string): string {
  let out = '';
  let depth = 0;
  let runStart = 0; // start of the text not yet copied to `out`
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    switch (c) {
      case 0x22: {
        // a string: jump to the quote that closes it (one preceded by an even number of backslashes)
        let j = i;
        for (;;) {
          j = text.indexOf('"', j + 1);
          if (j < 0) return out + text.slice(runStart); // unterminated: not valid JSON, left as is
          let backslashes = 0;
          while (text.charCodeAt(j - 1 - backslashes) === 0x5c) backslashes++;
          if ((backslashes & 1) === 0) break;
        }
        i = j;
        break;
      }
      case 0x7b: // {
      case 0x5b: {
        // [
        let j = i + 1;
        while (j < n && isJsonSpace(text.charCodeAt(j))) j++;
        if (text.charCodeAt(j) === (c === 0x7b ? 0x7d : 0x5d)) {
          out += text.slice(runStart, i) + (c === 0x7b ? '{}' : '[]');
          i = j;
          runStart = j + 1;
        } else {
          depth++;
          out += text.slice(runStart, i + 1) + newlineAt(depth);
          runStart = i + 1;
        }
        break;
      }
      case 0x7d: // }
      case 0x5d: // ]
        depth--;
        out += text.slice(runStart, i) + newlineAt(depth);
        runStart = i;
        break;
      case 0x2c: // ,
        out += text.slice(runStart, i + 1) + newlineAt(depth);
        runStart = i + 1;
        break;
      case 0x3a: // :
        out += text.slice(runStart, i) + ': ';
        runStart = i + 1;
        break;
      case 0x20:
      case 0x0a:
      case 0x0d:
      case 0x09:
        out += text.slice(runStart, i);
        runStart = i + 1;
        break;
    }
  }
  return out + text.slice(runStart);
}
