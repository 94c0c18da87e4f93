// Detection of a Postgres connection from the client's first message: its length, then its code.

import type { Detection, DetectContext } from '../protocol.js';
import { CANCEL_REQUEST, GSSENC_REQUEST, MAX_STARTUP_LENGTH, PROTOCOL_3_0, SSL_REQUEST } from './wire.js';

/** Is this a Postgres client's first message (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest)? */
export function detectPostgres(first: Buffer, ctx: Pick<DetectContext, 'dir'>): Detection {
  if (first.length < 8) {
    // Check what is there: a length of 8..10000, then the code's first bytes (00 03 for the
    // protocol version, 04 d2 for the SSL/GSSENC/cancel request codes, whose length is 8 or 16).
    const no: Detection = { verdict: 'no', why: 'not a Postgres startup packet' };
    if (first.length >= 1 && first[0] !== 0) return no;
    if (first.length < 4) return { verdict: 'more' };
    const len = first.readInt32BE(0);
    if (len < 8 || len > MAX_STARTUP_LENGTH) return no;
    if (first.length >= 5 && !(first[4] === 0 || (first[4] === 0x04 && (len === 8 || len === 16)))) return no;
    if (first.length >= 6 && first[5] !== (first[4] === 0 ? 0x03 : 0xd2)) return no;
    return { verdict: 'more' };
  }
  const len = first.readInt32BE(0);
  const code = first.readInt32BE(4);
  const known =
    ((code === SSL_REQUEST || code === GSSENC_REQUEST) && len === 8) ||
    (code === CANCEL_REQUEST && len === 16) ||
    (code === PROTOCOL_3_0 && len > 8 && len <= MAX_STARTUP_LENGTH);
  if (!known) return { verdict: 'no', why: 'not a Postgres startup packet' };
  if (ctx.dir === 'in')
    return { verdict: 'no', why: 'a Postgres client connected to the app (the server side is not recorded)' };
  return { verdict: 'yes' };
}
