// Recording-side references: secrets kept out of the files, and values that flow from a response
// into later requests of the same test set (a login's token) written once as a named variable.
// One RecordingRefs per test set being written; the writer feeds it every exchange in order.
//
//   request value  → {{ .token }}            when an earlier test response produced it
//                  → {{ .secret.X_API_KEY }} when its header, key or format says it is a secret
//   test response  → {{ .token }}            secret-named fields: captured at replay (random by nature)
//                                            other values are remembered as possible producers; when
//                                            a later request sends one, its file is rewritten to
//                                            capture it (rewriteProducer)
//   mock response  → {{ .secret.NAME }}      the mock server answers the reference text, a stable placeholder
//
// Values are kept only in memory (and secret values in the 0600 secrets file, via onSecret).

import type { HeaderList } from '../model/exchange.js';
import {
  findSecretFormats,
  isSecretHeaderName,
  isSecretKey,
  isSecretPath,
  NO_EXTRA_RULES,
  secretNameFor,
  variableNameFor,
  type RedactRules,
} from './secrets.js';
import { hasRef, secretRef, varRef } from './templates.js';

export type Role = 'test' | 'mock';

/** Where a possible producer's value sits in its test file's response. */
export interface Producer {
  file: string;
  /** Name suggested by where it was found (JSON key, header or cookie name). */
  name: string;
  value: string;
  where: 'body' | { header: string };
}

export interface RecordingRefsOptions {
  /** false (--no-redact): secrets stay in the files; values that flow still become variables. */
  redact: boolean;
  rules?: RedactRules;
  /** Secrets already in the secrets file (name → value): the same value keeps its name. */
  knownSecrets?: Record<string, string>;
  /** A new secret was named (write it to the secrets file). */
  onSecret?: (name: string, value: string) => void;
  /** A value of an already written test response flows: rewrite `producer.file` to capture it as `ref`. */
  rewriteProducer?: (producer: Producer, ref: string) => void;
}

/** Request headers whose values are never secrets nor variables. */
const PLAIN_HEADERS = new Set([
  'host',
  'content-length',
  'content-type',
  'content-encoding',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'accept',
  'accept-encoding',
  'accept-language',
  'user-agent',
  'date',
  'cache-control',
  'pragma',
  'expect',
  'te',
  'upgrade',
  'origin',
  'referer',
  'vary',
  'server',
  'last-modified',
  'expires',
  'age',
]);

/** Memory for remembered values (possible producers, values requests sent): characters in all. */
const MEMORY_BUDGET_CHARS = 8 * 1024 * 1024;
const MAX_PRODUCERS_PER_VALUE = 16;
/** Bodies larger than this are only written, not searched for references (megabyte downloads). */
const MAX_SCANNED_BODY = 4 * 1024 * 1024;

/**
 * A response value that could be a flowing id or token: long enough and not a plain word, so
 * "active" or "EUR" sent back later stays literal.
 */
function isCandidate(v: string): boolean {
  if (v.length < 8 || v.length > 2048 || /\s/.test(v)) return false;
  return (/\d/.test(v) && /[A-Za-z]/.test(v)) || v.length >= 20;
}

type Path = Array<string | number>;

/** "Bearer" → BEARER_TOKEN, "Basic" → BASIC_AUTH: the name of a credential found by its scheme alone. */
function schemeSecretName(scheme: string): string {
  return /^basic$/i.test(scheme) ? 'BASIC_AUTH' : `${scheme.toUpperCase()}_TOKEN`;
}

export class RecordingRefs {
  readonly redact: boolean;
  private readonly rules: RedactRules;
  private readonly secretByValue = new Map<string, string>();
  private readonly secretNames = new Map<string, string>();
  private readonly varByValue = new Map<string, string>();
  private readonly varNames = new Map<string, string>();
  /** Value → the test responses that held it, earliest first (all capture it once it flows). */
  private readonly producers = new Map<string, Producer[]>();
  private readonly seenInRequests = new Set<string>();
  /** Characters held in producers and seenInRequests; past the budget nothing more is remembered. */
  private remembered = 0;
  private readonly opts: RecordingRefsOptions;
  /** The test file being rendered (producers point at it). */
  currentFile = '';

  constructor(opts: RecordingRefsOptions) {
    this.opts = opts;
    this.redact = opts.redact;
    this.rules = opts.rules ?? NO_EXTRA_RULES;
    for (const [name, value] of Object.entries(opts.knownSecrets ?? {})) {
      this.secretNames.set(name, value);
      if (!this.secretByValue.has(value)) this.secretByValue.set(value, name);
    }
  }

  /** Secret names and variables made so far (for the summary and tests). */
  summary(): { secrets: string[]; variables: string[] } {
    return { secrets: [...new Set(this.secretByValue.values())], variables: [...this.varNames.keys()] };
  }

  private secretFor(value: string, base: string): string {
    const known = this.secretByValue.get(value);
    if (known) return known;
    let name = base;
    for (let i = 2; this.secretNames.has(name) && this.secretNames.get(name) !== value; i++) name = `${base}_${i}`;
    this.secretNames.set(name, value);
    this.secretByValue.set(value, name);
    this.opts.onSecret?.(name, value);
    return name;
  }

  private variableFor(value: string, base: string): string {
    const known = this.varByValue.get(value);
    if (known) return known;
    const clean = /^[A-Za-z_]/.test(base) ? base : `v_${base}`;
    let name = clean;
    for (let i = 2; this.varNames.has(name) || name === 'secret'; i++) name = `${clean}_${i}`;
    this.varNames.set(name, value);
    this.varByValue.set(value, name);
    return name;
  }

  /** Secret-format substrings of `v` replaced by secret references. */
  private formats(v: string): string {
    if (!this.redact) return v;
    const hits = findSecretFormats(v);
    if (hits.length === 0) return v;
    let out = '';
    let last = 0;
    for (const h of hits) {
      out += v.slice(last, h.start) + secretRef(this.secretFor(v.slice(h.start, h.end), h.name));
      last = h.end;
    }
    return out + v.slice(last);
  }

  /** One value a request sends. `secretBase`: the secret's name when its key or header says it is one. */
  requestValue(v: string, secretBase: string | undefined, role: Role): string {
    if (v === '' || hasRef(v)) return v;
    const scheme = /^(Bearer|Basic|Token|Bot|Digest)\s+(\S+)$/i.exec(v);
    // A credential after its scheme is a secret whatever header or key carries it.
    if (scheme)
      return `${scheme[1]} ${this.requestValue(scheme[2]!, secretBase ?? schemeSecretName(scheme[1]!), role)}`;
    const variable = this.varByValue.get(v);
    if (variable) return varRef(variable);
    const secret = this.redact ? this.secretByValue.get(v) : undefined;
    if (secret) return secretRef(secret);
    if (role === 'test' && !this.seenInRequests.has(v)) {
      const producers = this.producers.get(v);
      if (producers) {
        const name = this.variableFor(v, producers[0]!.name);
        this.producers.delete(v);
        for (const p of producers) this.opts.rewriteProducer?.(p, varRef(name));
        return varRef(name);
      }
    }
    if (this.redact && secretBase) return secretRef(this.secretFor(v, secretBase));
    if (v.length >= 6 && v.length <= 2048 && this.remembered < MEMORY_BUDGET_CHARS && !this.seenInRequests.has(v)) {
      this.seenInRequests.add(v);
      this.remembered += v.length;
    }
    return this.formats(v);
  }

  /** One value a response carries. `where`: how to find it again in a test file (producers). */
  responseValue(v: string, secretBase: string | undefined, role: Role, name: string, where: Producer['where']): string {
    if (v === '' || hasRef(v)) return v;
    const scheme = /^(Bearer|Basic|Token)\s+(\S+)$/i.exec(v);
    if (scheme)
      return `${scheme[1]} ${this.responseValue(scheme[2]!, secretBase ?? schemeSecretName(scheme[1]!), role, name, where)}`;
    const secret = this.redact ? this.secretByValue.get(v) : undefined;
    if (secret) return secretRef(secret);
    // In a mock response, the mock server fills it in with this run's value.
    const variable = this.varByValue.get(v);
    if (variable) return varRef(variable);
    if (this.redact && secretBase) {
      // A credential the app hands out (a login's token): captured at replay in a test, a stable
      // placeholder in a mock.
      return role === 'test'
        ? varRef(this.variableFor(v, variableNameFor(name)))
        : secretRef(this.secretFor(v, secretBase));
    }
    const hits = this.redact ? findSecretFormats(v) : [];
    if (hits.length === 1 && hits[0]!.start === 0 && hits[0]!.end === v.length && role === 'test') {
      return varRef(this.variableFor(v, variableNameFor(name || hits[0]!.name)));
    }
    if (
      role === 'test' &&
      this.currentFile &&
      isCandidate(v) &&
      !this.seenInRequests.has(v) &&
      this.remembered < MEMORY_BUDGET_CHARS
    ) {
      // Every response that held it (a created id, then a list that shows it): all capture it.
      const list = this.producers.get(v) ?? [];
      const last = list[list.length - 1];
      // A value repeated in many responses that never flows is stable: a few producers are enough.
      if (list.length < MAX_PRODUCERS_PER_VALUE && !(last && last.file === this.currentFile && last.where === where)) {
        list.push({ file: this.currentFile, name: variableNameFor(name || 'value'), value: v, where });
        this.producers.set(v, list);
        this.remembered += v.length + 64;
      }
    }
    return hits.length === 0 ? v : this.formats(v);
  }

  // ---- messages ----

  requestHeaders(headers: HeaderList, role: Role): HeaderList {
    return headers.map(([name, value]) => {
      const lower = name.toLowerCase();
      if (lower === 'cookie') return [name, this.cookiePairs(value, role)];
      const base = isSecretHeaderName(name, this.rules) ? secretNameFor(name) : undefined;
      if (!base && PLAIN_HEADERS.has(lower)) return [name, value];
      return [name, this.requestValue(value, base, role)];
    });
  }

  private cookiePairs(value: string, role: Role): string {
    return value
      .split(/;\s*/)
      .map((pair) => {
        const eq = pair.indexOf('=');
        if (eq < 0) return this.requestValue(pair, 'COOKIE', role);
        const n = pair.slice(0, eq);
        return `${n}=${this.requestValue(pair.slice(eq + 1), `COOKIE_${secretNameFor(n)}`, role)}`;
      })
      .join('; ');
  }

  responseHeaders(headers: HeaderList, role: Role): HeaderList {
    return headers.map(([name, value]) => {
      const lower = name.toLowerCase();
      if (lower === 'set-cookie') {
        const semi = value.indexOf(';');
        const first = semi < 0 ? value : value.slice(0, semi);
        const eq = first.indexOf('=');
        if (eq <= 0) return [name, value];
        const n = first.slice(0, eq);
        const v = this.responseValue(first.slice(eq + 1), `COOKIE_${secretNameFor(n)}`, role, n, { header: name });
        return [name, `${n}=${v}${semi < 0 ? '' : value.slice(semi)}`];
      }
      const base = isSecretHeaderName(name, this.rules) ? secretNameFor(name) : undefined;
      if (!base && PLAIN_HEADERS.has(lower)) return [name, value];
      return [name, this.responseValue(value, base, role, name, { header: name })];
    });
  }

  /** Path and query of a request URL (absolute or a path), values replaced; the rest kept as written. */
  requestUrl(url: string, role: Role): string {
    const m = /^([a-z][a-z0-9+.-]*:\/\/[^/?#]*)?([^?#]*)(\?[^#]*)?(#.*)?$/i.exec(url);
    if (!m) return url;
    const path = (m[2] ?? '')
      .split('/')
      .map((seg) => {
        if (seg === '') return seg;
        let decoded: string;
        try {
          decoded = decodeURIComponent(seg);
        } catch {
          return seg;
        }
        const out = this.requestValue(decoded, undefined, role);
        return out === decoded ? seg : out;
      })
      .join('/');
    const query = m[3] ? '?' + this.formPairs(m[3].slice(1), role) : '';
    return `${m[1] ?? ''}${path}${query}${m[4] ?? ''}`;
  }

  /** "a=1&token=x" with values replaced by references (names and separators kept). */
  private formPairs(text: string, role: Role): string {
    return text
      .split('&')
      .map((pair) => {
        const eq = pair.indexOf('=');
        if (eq < 0) return pair;
        const k = pair.slice(0, eq);
        const raw = pair.slice(eq + 1);
        let key: string;
        let v: string;
        try {
          key = decodeURIComponent(k.replace(/\+/g, ' '));
          v = decodeURIComponent(raw.replace(/\+/g, ' '));
        } catch {
          return pair;
        }
        const base = isSecretKey(key, this.rules) ? secretNameFor(key) : undefined;
        const out = this.requestValue(v, base, role);
        return out === v ? pair : `${k}=${out}`;
      })
      .join('&');
  }

  /** A stored request body (text as written to the file) with values replaced. */
  requestBody(text: string, contentType: string | undefined, role: Role): string {
    return this.body(
      text,
      contentType,
      (v, key, path) => {
        const secret = isSecretKey(key, this.rules) || isSecretPath(path, this.rules);
        return this.requestValue(v, secret ? secretNameFor(key) : undefined, role);
      },
      (t) =>
        /x-www-form-urlencoded/i.test(contentType ?? '')
          ? this.formPairs(t.replace(/\n$/, ''), role) + (t.endsWith('\n') ? '\n' : '')
          : this.formats(t),
    );
  }

  responseBody(text: string, contentType: string | undefined, role: Role): string {
    return this.body(
      text,
      contentType,
      (v, key, path) => {
        const secret = isSecretKey(key, this.rules) || isSecretPath(path, this.rules);
        return this.responseValue(v, secret ? secretNameFor(key) : undefined, role, key, 'body');
      },
      (t) => this.formats(t),
    );
  }

  private body(
    text: string,
    _contentType: string | undefined,
    leaf: (v: string, key: string, path: Path) => string,
    plain: (t: string) => string,
  ): string {
    if (text === '' || text.length > MAX_SCANNED_BODY) return text;
    const trimmed = text.trimStart();
    if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        return plain(text);
      }
      const changes = new Map<string, string>();
      // Paths are built only when the user listed some (redact: ["$.user.ssn"]): most bodies need none.
      const withPaths = this.rules.paths.length > 0;
      const walk = (v: unknown, key: string, path: Path): void => {
        if (typeof v === 'string') {
          if (v === '' || changes.has(v)) return;
          const out = leaf(v, key, path);
          if (out !== v) changes.set(v, out);
        } else if (Array.isArray(v)) {
          for (let i = 0; i < v.length; i++) walk(v[i], key, withPaths ? [...path, i] : path);
        } else if (v !== null && typeof v === 'object') {
          for (const k in v) walk((v as Record<string, unknown>)[k], k, withPaths ? [...path, k] : path);
        }
      };
      walk(value, '', []);
      if (changes.size === 0) return text;
      // Replaced as JSON string tokens in the stored text, so everything else (big numbers,
      // layout) stays exactly as recorded.
      let out = text;
      for (const [from, to] of changes) out = out.split(JSON.stringify(from)).join(JSON.stringify(to));
      return out;
    }
    return plain(text);
  }
}
