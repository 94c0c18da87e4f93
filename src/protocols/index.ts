// The registry: every protocol tlsrec records and replays, in the order they are asked to
// recognise a connection (the first that says yes takes it). Adding a protocol = a folder beside
// http1/ that exports a Protocol, and one line here.

import { http1 } from './http1/index.js';
import { http2 } from './http2/index.js';
import { postgres } from './postgres/index.js';
import type { Protocol } from './protocol.js';
import { redis } from './redis/index.js';

export const PROTOCOLS: readonly Protocol[] = [http1, http2, postgres, redis];
