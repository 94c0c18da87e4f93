// Looking up a header in a HeaderList (wire order, original case, repeats kept). Shared by record,
// format and replay so that every stage reads headers the same way.

import type { HeaderList } from './exchange.js';

/** The first value of a header (case-insensitive name): for single-valued ones such as Host, Content-Type. */
export function firstHeader(headers: HeaderList, name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const [n, v] of headers) if (n.toLowerCase() === lower) return v;
  return undefined;
}

/** All lines of a header joined with ", " (list semantics): for Content-Encoding, Upgrade and the like. */
export function joinedHeader(headers: HeaderList, name: string): string | undefined {
  const lower = name.toLowerCase();
  const values = headers.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v);
  return values.length === 0 ? undefined : values.join(', ');
}
