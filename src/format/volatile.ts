// Record-time noise: response fields whose recorded value is unmistakably volatile — it will be
// different on the next run whatever the app does — become `spec.assertions.noise` entries when
// a test is written, in Keploy's key shape (`header.X-Request-Id`, `body.items.seenAt`: arrays by
// path without an index).
//
// Flagged, when the WHOLE value (a header value, a JSON string or number) is:
//   - a UUID of version 4 (random) or 2, or of version 1, 6 or 7 whose embedded time lies in the
//     recording window; never 3 or 5 (name-based: the same name gives the same UUID), nil or max;
//   - an RFC 3339 / ISO 8601 date-time, or an HTTP date (IMF-fixdate, RFC 850, asctime), in the
//     recording window;
//   - a number (or a string of digits) that read as epoch seconds or milliseconds lies in the
//     recording window.
// The recording window is the exchange's own time ± WINDOW_MARGIN_MS (one day): a timestamp the app
// made while answering falls in it, a stored one (a release date, a birthday, an old record) does
// not. A value that also appears in the request (URL or body) is an echo of the input, so it is
// not flagged (GET /users/<uuid> answering {"id": "<uuid>"}).
// Never flagged: anything else — names, plans, prices, ids like "A-1", hex hashes, tokens, ETags.
// Random hex strings are volatile too, but a hash of content looks the same, so only a second run
// (`tlsrec test --detect-noise`) can tell them apart.
//
// Pure: no I/O.

import type { HeaderList } from '../model/exchange.js';

/** How far around the exchange's own time a timestamp still counts as made while recording. */
export const WINDOW_MARGIN_MS = 24 * 60 * 60 * 1000;

/** Epoch milliseconds, inclusive. */
export interface RecordingWindow {
  fromMs: number;
  toMs: number;
}

export type VolatileKind = 'uuid' | 'timestamp' | 'http-date' | 'epoch-seconds' | 'epoch-millis';

export interface VolatileField {
  /** Noise key as written in the test: "header.X-Request-Id", "body.items.seenAt". */
  key: string;
  kind: VolatileKind;
}

/**
 * A window for answers whose recording time is unknown (a test file's expected response): any
 * time from 2000 until tomorrow. Only for checking that a value is *shaped* like a volatile one.
 */
export function anyRecentTime(nowMs: number = Date.now()): RecordingWindow {
  return { fromMs: Date.UTC(2000, 0, 1), toMs: nowMs + WINDOW_MARGIN_MS };
}

/** The window around an exchange that took place from `startMs` to `endMs`. */
export function windowAround(
  startMs: number,
  endMs: number = startMs,
  marginMs: number = WINDOW_MARGIN_MS,
): RecordingWindow {
  return { fromMs: Math.min(startMs, endMs) - marginMs, toMs: Math.max(startMs, endMs) + marginMs };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-([0-9a-f])[0-9a-f]{3}-([0-9a-f])[0-9a-f]{3}-[0-9a-f]{12}$/i;

/** 100-ns intervals between the Gregorian epoch (1582-10-15) and the Unix epoch. */
const GREGORIAN_OFFSET = 122192928000000000n;

function inWindow(ms: number, w: RecordingWindow): boolean {
  return Number.isFinite(ms) && ms >= w.fromMs && ms <= w.toMs;
}

/** The time a v1/v6/v7 UUID carries, in epoch ms; undefined for other versions. */
function uuidTimeMs(hex: string, version: string): number | undefined {
  const h = hex.replace(/-/g, '');
  if (version === '7') return Number.parseInt(h.slice(0, 12), 16);
  let ticks: bigint;
  if (version === '1') {
    // time_low (8) time_mid (4) version+time_hi (4)
    ticks =
      (BigInt('0x' + h.slice(13, 16)) << 48n) | (BigInt('0x' + h.slice(8, 12)) << 32n) | BigInt('0x' + h.slice(0, 8));
  } else if (version === '6') {
    ticks = (BigInt('0x' + h.slice(0, 12)) << 12n) | BigInt('0x' + h.slice(13, 16));
  } else {
    return undefined;
  }
  return Number((ticks - GREGORIAN_OFFSET) / 10_000n);
}

function uuidIsVolatile(value: string, w: RecordingWindow): boolean {
  const m = UUID.exec(value);
  if (!m) return false;
  const version = m[1]!;
  const variant = Number.parseInt(m[2]!, 16);
  // RFC 9562 variant (10xx): nil (all zero) and max (all f) fall outside it
  if ((variant & 0b1100) !== 0b1000) return false;
  if (version === '4' || version === '2') return true;
  const ms = uuidTimeMs(value, version);
  return ms !== undefined && inWindow(ms, w);
}

const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?$/;
const DAY = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)';
const MONTH = '(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)';
const HTTP_DATES = [
  new RegExp(`^${DAY}, \\d{2} ${MONTH} \\d{4} \\d{2}:\\d{2}:\\d{2} GMT$`), // IMF-fixdate
  new RegExp(
    `^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), \\d{2}-${MONTH}-\\d{2} \\d{2}:\\d{2}:\\d{2} GMT$`,
  ), // RFC 850
  new RegExp(`^${DAY} ${MONTH} [ \\d]\\d \\d{2}:\\d{2}:\\d{2} \\d{4}$`), // asctime
];

function isoTimeMs(value: string): number | undefined {
  if (!ISO_DATE_TIME.test(value)) return undefined;
  // Date.parse wants "T" and "." and a colon in the offset; no offset = local time, as ISO says.
  let v = value
    .replace(/^(\S{10})[t ]/, '$1T')
    .replace(',', '.')
    .replace(/z$/, 'Z');
  v = v.replace(/([+-]\d{2})(\d{2})$/, '$1:$2').replace(/([+-]\d{2})$/, '$1:00');
  // fractions longer than milliseconds: Date.parse accepts them in V8, but cut them to be sure
  v = v.replace(/(\.\d{3})\d+/, '$1');
  const ms = Date.parse(v);
  return Number.isNaN(ms) ? undefined : ms;
}

function httpDateMs(value: string): number | undefined {
  if (!HTTP_DATES.some((re) => re.test(value))) return undefined;
  const ms = Date.parse(value.replace(/-/g, ' '));
  return Number.isNaN(ms) ? undefined : ms;
}

/** Epoch seconds (10 digits now) or milliseconds (13 digits) in the window. */
function epochKind(n: number, w: RecordingWindow): VolatileKind | undefined {
  if (!Number.isFinite(n) || n <= 0) return undefined;
  if (inWindow(n * 1000, w)) return 'epoch-seconds';
  if (Number.isInteger(n) && inWindow(n, w)) return 'epoch-millis';
  return undefined;
}

/** What kind of volatile value this is, or undefined for a value that may well be stable. */
export function classifyVolatile(value: unknown, w: RecordingWindow): VolatileKind | undefined {
  if (typeof value === 'number') return epochKind(value, w);
  if (typeof value !== 'string') return undefined;
  const v = value.trim();
  if (v.length < 10 || v.length > 64) return undefined;
  if (uuidIsVolatile(v, w)) return 'uuid';
  const iso = isoTimeMs(v);
  if (iso !== undefined) return inWindow(iso, w) ? 'timestamp' : undefined;
  const http = httpDateMs(v);
  if (http !== undefined) return inWindow(http, w) ? 'http-date' : undefined;
  if (/^\d{10}(?:\.\d{1,6})?$|^\d{13}$/.test(v)) return epochKind(Number(v), w);
  return undefined;
}

export interface VolatileInput {
  /** The request as recorded: values it contains are echoes of the input, never flagged. */
  request: { url: string; body: Buffer };
  response: { headers: HeaderList; body: Buffer; contentType?: string | undefined };
  window: RecordingWindow;
  /** Header names (any case) not to look at: those already noise or redacted. */
  skipHeaders?: readonly string[];
}

/** Response headers and JSON body fields whose recorded value is unmistakably volatile. */
export function findVolatileFields(input: VolatileInput): VolatileField[] {
  const found = new Map<string, VolatileField>();
  const requestText =
    input.request.url + '\n' + (input.request.body.length <= 1 << 20 ? input.request.body.toString('utf8') : '');
  const echoed = (v: unknown): boolean => String(v).length >= 4 && requestText.includes(String(v));
  const add = (key: string, value: unknown): void => {
    if (found.has(key.toLowerCase()) || echoed(value)) return;
    const kind = classifyVolatile(value, input.window);
    if (kind) found.set(key.toLowerCase(), { key, kind });
  };

  const skip = new Set((input.skipHeaders ?? []).map((h) => h.toLowerCase()));
  for (const [name, value] of input.response.headers) {
    if (skip.has(name.toLowerCase())) continue;
    add(`header.${name}`, value);
  }

  const body = input.response.body;
  if (body.length === 0 || body.length > 4 << 20) return [...found.values()];
  const ct = (input.response.contentType ?? '').toLowerCase();
  const first = body.subarray(0, 64).toString('utf8').trimStart()[0];
  if (!(ct.includes('json') || first === '{' || first === '[')) return [...found.values()];
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return [...found.values()];
  }
  walk(value, ['body'], add);
  return [...found.values()];
}

/** Keys that a dotted noise path cannot spell (they hold "." or "[" or nothing). */
const UNSPELLABLE = /[.[\]]|^$/;

function walk(value: unknown, path: string[], add: (key: string, value: unknown) => void): void {
  if (Array.isArray(value)) {
    // Keploy's shape: array elements share their array's path
    for (const item of value) walk(item, path, add);
    return;
  }
  if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      if (UNSPELLABLE.test(k)) continue;
      walk(v, [...path, k], add);
    }
    return;
  }
  add(path.join('.'), value);
}
