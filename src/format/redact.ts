// Secrets never reach the files: credential headers are replaced by a marker when recording.
// Pure functions; the writer applies them to every test and mock.

import type { HeaderList } from '../model/exchange.js';

export const REDACTED = '[REDACTED]';

/** Always redacted (case-insensitive), in addition to names containing key, token or secret. */
export const DEFAULT_REDACTED_HEADERS: readonly string[] = [
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
];

const SECRET_WORDS = /key|token|secret/i;

/** True when a header's value must not be written: default names, key/token/secret names, or `extra`. */
export function isSecretHeader(name: string, extra: readonly string[] = []): boolean {
  const lower = name.toLowerCase();
  if (DEFAULT_REDACTED_HEADERS.includes(lower)) return true;
  if (SECRET_WORDS.test(lower)) return true;
  return extra.some((e) => e.toLowerCase() === lower);
}

/** A copy of `headers` with secret values replaced by [REDACTED]; names and order are kept. */
export function redactHeaders(headers: HeaderList, extra: readonly string[] = []): HeaderList {
  return headers.map(([name, value]) => [name, isSecretHeader(name, extra) ? REDACTED : value]);
}
