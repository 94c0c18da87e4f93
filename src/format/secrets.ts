// What counts as a secret when recording: header names, JSON keys, query and form parameter
// names that name a credential, and values in well-known credential formats. Pure; the
// recording-side bookkeeping (names, references, the secrets file) is in variables.ts.

import { isSecretHeader } from './redact.js';

/** Key names (lower-case, without separators) that always name a secret. */
const SECRET_KEYS = new Set([
  'password',
  'passwd',
  'passphrase',
  'secret',
  'clientsecret',
  'apisecret',
  'token',
  'accesstoken',
  'refreshtoken',
  'idtoken',
  'authtoken',
  'sessiontoken',
  'bearertoken',
  'apikey',
  'xapikey',
  'privatekey',
  'secretkey',
  'accesskey',
  'secretaccesskey',
  'cookie',
  'setcookie',
  'authorization',
  'proxyauthorization',
  'sessionid',
  'jwt',
]);

/** Names that end like a secret but hold none: pagination cursors, the token's type. */
const NOT_SECRET_KEYS = new Set([
  'pagetoken',
  'nextpagetoken',
  'nexttoken',
  'continuationtoken',
  'cursortoken',
  'synctoken',
  'tokentype',
]);

/** Endings that name a secret too: dbPassword, github_token, stripe-secret, myApiKey. */
const SECRET_SUFFIXES = ['password', 'passwd', 'secret', 'token', 'apikey', 'privatekey', 'secretkey'];

/** "Access-Token", "access_token", "accessToken" → "accesstoken". */
export function normalizeKey(key: string): string {
  return key.toLowerCase().replace(/[-_.\s]/g, '');
}

/** Rules added by the user: header names (--redact, redact.headers), JSON keys and JSON paths. */
export interface RedactRules {
  headers: readonly string[];
  /** Key names, compared like the defaults (case- and separator-insensitive). */
  keys: readonly string[];
  /** JSON paths in bodies: "$.user.ssn", "body.user.ssn", "items.[].card" ([] or * = any index). */
  paths: readonly string[];
}

export const NO_EXTRA_RULES: RedactRules = { headers: [], keys: [], paths: [] };

/** True when a JSON key, query or form parameter named `key` holds a secret. */
export function isSecretKey(key: string, rules: RedactRules = NO_EXTRA_RULES): boolean {
  const k = normalizeKey(key);
  if (k === '' || NOT_SECRET_KEYS.has(k)) return false;
  if (SECRET_KEYS.has(k)) return true;
  if (SECRET_SUFFIXES.some((s) => k.endsWith(s))) return true;
  return rules.keys.some((e) => normalizeKey(e) === k) || rules.headers.some((e) => normalizeKey(e) === k);
}

export function isSecretHeaderName(name: string, rules: RedactRules = NO_EXTRA_RULES): boolean {
  return isSecretHeader(name, rules.headers) || rules.keys.some((e) => normalizeKey(e) === normalizeKey(name));
}

/** A JSON path rule as segments: "$.user.ssn" → ["user", "ssn"]; "[]" and "*" match any index/key. */
function pathSegments(rule: string): string[] {
  const r = rule
    .trim()
    .replace(/^\$\.?/, '')
    .replace(/^body\./, '');
  return r.split('.').flatMap((s) => {
    const m = /^([^[\]]*)((?:\[\d*\])*)$/.exec(s);
    if (!m) return [s];
    const parts = m[1] ? [m[1]] : [];
    for (let i = 0; i < (m[2]!.match(/\[/g)?.length ?? 0); i++) parts.push('[]');
    return parts;
  });
}

/** True when a body value at `path` (keys and array indexes) is listed in the user's paths. */
export function isSecretPath(path: ReadonlyArray<string | number>, rules: RedactRules): boolean {
  for (const rule of rules.paths) {
    const segs = pathSegments(rule);
    if (segs.length !== path.length) continue;
    if (segs.every((s, i) => s === '*' || (s === '[]' ? typeof path[i] === 'number' : s === String(path[i]))))
      return true;
  }
  return false;
}

export interface SecretFormat {
  /** Name given to a secret found by this format alone (no telling key or header). */
  name: string;
  re: RegExp;
}

/** Well-known credential formats, matched anywhere in a value. */
export const SECRET_FORMATS: readonly SecretFormat[] = [
  { name: 'PRIVATE_KEY', re: /-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z]+ )*PRIVATE KEY-----/g },
  { name: 'JWT', re: /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g },
  { name: 'AWS_ACCESS_KEY_ID', re: /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g },
  { name: 'GITHUB_TOKEN', re: /\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{60,})\b/g },
  { name: 'STRIPE_KEY', re: /\b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}\b/g },
  { name: 'SLACK_TOKEN', re: /\bxox[abposr]-[0-9A-Za-z-]{10,}\b/g },
  { name: 'BEARER_TOKEN', re: /(?<=\bBearer )[A-Za-z0-9._~+/=-]{8,}/g },
];

export interface FormatHit {
  start: number;
  end: number;
  name: string;
}

/** Something every format above starts with: one scan rules most text out before the seven. */
const FORMAT_TRIGGER = /eyJ|AKIA|ASIA|gh[pousr]_|github_pat_|_(?:live|test)_|xox[abposr]-|-----BEGIN|Bearer /;

/** Credential-format matches in `text`, in order, not overlapping. */
export function findSecretFormats(text: string): FormatHit[] {
  if (text.length < 16 || !FORMAT_TRIGGER.test(text)) return [];
  const hits: FormatHit[] = [];
  for (const f of SECRET_FORMATS) {
    f.re.lastIndex = 0;
    for (const m of text.matchAll(f.re)) hits.push({ start: m.index, end: m.index + m[0].length, name: f.name });
  }
  hits.sort((a, b) => a.start - b.start || b.end - a.end);
  const out: FormatHit[] = [];
  for (const h of hits) if (out.length === 0 || h.start >= out[out.length - 1]!.end) out.push(h);
  return out;
}

/** "x-api-key" → "X_API_KEY", "accessToken" → "ACCESS_TOKEN": the name of a secret (and of its variable). */
export function secretNameFor(key: string): string {
  const snake = key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .toUpperCase();
  return snake === '' ? 'SECRET' : /^[0-9]/.test(snake) ? `S_${snake}` : snake;
}

/** "X-Auth-Token" → "x_auth_token": the name of a variable. */
export function variableNameFor(key: string): string {
  return secretNameFor(key).toLowerCase();
}
