// Capture events → exchanges, for every protocol. Per connection: two byte streams put in order
// (streams.ts); the first bytes of each direction are shown to the registered protocols
// (src/protocols/index.ts) until one recognises them, and that protocol's reconstructor gets the
// connection's bytes from the start. A connection no protocol recognises is counted and skipped
// ('not-http'), and so is anything a protocol could not turn into whole exchanges: bad traffic
// never throws.

import { causeText } from '../errors.js';
import { connKey, type CaptureConnection, type CaptureEvent, type Direction, type OpenEvent } from '../model/events.js';
import type { ConnectionIdentity, Exchange, ExchangePayload, SkippedStream } from '../model/exchange.js';
import { PROTOCOLS } from '../protocols/index.js';
import type {
  ConnectionReconstructor,
  DetectContext,
  RecordingProtocol,
  StreamProblem,
} from '../protocols/protocol.js';
import { StreamAssembler, type StreamOutput } from './streams.js';

export interface ReconstructStats {
  exchanges: number;
  incoming: number;
  outgoing: number;
  skipped: SkippedStream[];
  bytesIn: number;
  bytesOut: number;
  connections: number;
}

export interface ReconstructorOptions {
  onExchange(ex: Exchange): void;
  onSkipped?(s: SkippedStream): void;
  /** Larger header sections are a parse error. Default (HTTP/1): 80 KiB. */
  maxHeaderSize?: number;
  /** The protocols to try, in order. Default: all registered ones. */
  protocols?: readonly RecordingProtocol[];
}

/**
 * Bytes a direction may carry, once no protocol recognised its start, while the other direction
 * may still be recognised; beyond it the connection is skipped.
 */
const MAX_UNRECOGNISED_BYTES = 1024 * 1024;

/** What a direction's first bytes told the protocols. */
interface Recognition {
  /** Its first bytes so far, while undecided. */
  first: Buffer;
  /** Every protocol said no: why, one entry per protocol. */
  rejectedWhy: string[] | undefined;
  /** Bytes of this direction once it was rejected, counted from its start. */
  rejectedBytes: number;
}

type Pending = { type: 'data'; dir: Direction; data: Buffer; tsNs: bigint } | { type: 'stop'; dir: Direction };

interface Conn extends Pick<ConnectionIdentity, 'conn' | 'tgid' | 'tls'> {
  key: string;
  open: OpenEvent | undefined;
  asm: Record<Direction, StreamAssembler>;
  problems: StreamProblem[];
  /** Set once a protocol recognised the connection. */
  handler: ConnectionReconstructor | undefined;
  /** Until then: what each direction's first bytes said, and the stream in capture order. */
  recognition: Record<Direction, Recognition>;
  pending: Pending[];
  /** No protocol recognised either direction: the rest of the connection is only counted. */
  unrecognised: boolean;
  /** Exchanges emitted on it so far: the next one's indexOnConn. */
  index: number;
}

/** Zero bytes, shared: never written to. */
const NO_BYTES = Buffer.alloc(0);
const newRecognition = (): Recognition => ({ first: NO_BYTES, rejectedWhy: undefined, rejectedBytes: 0 });

/** Order of severity: a connection's SkippedStream takes the reason of its most severe problem. */
const SEVERITY: SkippedStream['reason'][] = ['bytes-lost', 'not-http', 'parse-error', 'incomplete', 'unpaired'];

export class Reconstructor {
  private readonly opts: ReconstructorOptions;
  private readonly protocols: readonly RecordingProtocol[];
  private readonly conns = new Map<string, Conn>();
  /** How many times each key was seen, to name reused keys apart. Small: one number per key. */
  private readonly generations = new Map<string, number>();
  private readonly stats: ReconstructStats = {
    exchanges: 0,
    incoming: 0,
    outgoing: 0,
    skipped: [],
    bytesIn: 0,
    bytesOut: 0,
    connections: 0,
  };
  private finished = false;

  constructor(opts: ReconstructorOptions) {
    this.opts = opts;
    this.protocols = opts.protocols ?? PROTOCOLS;
  }

  push(ev: CaptureEvent): void {
    if (this.finished) return;
    try {
      this.handle(ev);
    } catch (err) {
      // A bug here must not end a recording: report the connection and drop its state.
      const key = 'connId' in ev ? connKey(ev) : '?';
      const c = this.conns.get(key);
      if (c) {
        c.problems.push({ reason: 'parse-error', detail: `internal error: ${causeText(err)}` });
        this.stop(c, 'in');
        this.stop(c, 'out');
      }
    }
  }

  finish(): ReconstructStats {
    if (!this.finished) {
      for (const c of [...this.conns.values()]) {
        try {
          this.close(c);
        } catch {
          this.conns.delete(c.key);
        }
      }
      this.finished = true;
    }
    return { ...this.stats, skipped: [...this.stats.skipped] };
  }

  // ---- events ------------------------------------------------------------------------------

  private handle(ev: CaptureEvent): void {
    switch (ev.type) {
      case 'exec':
        return;
      case 'open': {
        const old = this.conns.get(connKey(ev));
        // An open on a known key starts a new connection (socket keys carry a stamp, so this is rare).
        if (old && (old.asm.in.received > 0 || old.asm.out.received > 0)) this.close(old);
        this.conn(ev).open = ev;
        return;
      }
      case 'close': {
        const c = this.conns.get(connKey(ev));
        if (c) this.close(c);
        return;
      }
      case 'data': {
        const c = this.conn(ev);
        if (ev.dir === 'in') this.stats.bytesIn += ev.data.length;
        else this.stats.bytesOut += ev.data.length;
        this.onStream(c, ev.dir, c.asm[ev.dir].push(ev));
        return;
      }
      case 'loss': {
        const c = this.conn(ev);
        this.onStream(c, ev.dir, c.asm[ev.dir].loss(ev));
        return;
      }
    }
  }

  private conn(ev: CaptureConnection): Conn {
    const key = connKey(ev);
    let c = this.conns.get(key);
    if (!c) {
      const gen = (this.generations.get(key) ?? 0) + 1;
      this.generations.set(key, gen);
      c = {
        key,
        conn: gen === 1 ? key : `${key}#${gen}`,
        tgid: ev.tgid,
        tls: ev.source === 'tls',
        open: undefined,
        asm: { in: new StreamAssembler(), out: new StreamAssembler() },
        problems: [],
        handler: undefined,
        recognition: { in: newRecognition(), out: newRecognition() },
        pending: [],
        unrecognised: false,
        index: 0,
      };
      this.conns.set(key, c);
      this.stats.connections++;
    }
    return c;
  }

  private onStream(c: Conn, dir: Direction, outs: StreamOutput[]): void {
    for (const o of outs) {
      if (o.type === 'lost') {
        c.problems.push({
          reason: 'bytes-lost',
          detail: `${dir}: ${o.len} byte(s) at position ${o.pos} never arrived (${o.reason})`,
        });
        this.stop(c, dir);
      } else if (c.handler) {
        c.handler.data(dir, o.data, o.tsNs);
      } else if (!c.unrecognised) {
        c.pending.push({ type: 'data', dir, data: o.data, tsNs: o.tsNs });
        this.recognise(c, dir, o.data);
      }
    }
  }

  private stop(c: Conn, dir: Direction): void {
    if (c.handler) c.handler.stop(dir);
    else if (!c.unrecognised) c.pending.push({ type: 'stop', dir });
  }

  // ---- which protocol ----------------------------------------------------------------------

  private recognise(c: Conn, dir: Direction, data: Buffer): void {
    const r = c.recognition[dir];
    if (r.rejectedWhy) {
      r.rejectedBytes += data.length;
      if (r.rejectedBytes > MAX_UNRECOGNISED_BYTES) this.unrecognised(c);
      return;
    }
    r.first = r.first.length === 0 ? data : Buffer.concat([r.first, data]);
    const ctx = this.detectContext(c, dir);
    const why: string[] = [];
    for (const p of this.protocols) {
      const d = p.detect(r.first, ctx);
      if (d.verdict === 'yes') return this.hand(c, p);
      if (d.verdict === 'no') why.push(d.why);
    }
    if (why.length < this.protocols.length) return; // some protocol wants more bytes
    r.rejectedBytes = r.first.length;
    r.first = NO_BYTES;
    r.rejectedWhy = why;
    const other = c.recognition[dir === 'in' ? 'out' : 'in'];
    if (other.rejectedWhy) this.unrecognised(c);
  }

  private detectContext(c: Conn, dir: Direction): DetectContext {
    const ctx: DetectContext = { dir, source: c.tls ? 'tls' : 'socket' };
    const o = c.open;
    if (o) {
      ctx.opened = o.role;
      if (o.localPort !== undefined) ctx.localPort = o.localPort;
      if (o.remotePort !== undefined) ctx.remotePort = o.remotePort;
    }
    return ctx;
  }

  /** `p` reads the connection from here on, starting with everything captured so far. */
  private hand(c: Conn, p: RecordingProtocol): void {
    const handler = p.reconstruct(
      { emit: (ex) => this.emit(c, ex), problems: c.problems },
      this.opts.maxHeaderSize === undefined ? {} : { maxHeaderSize: this.opts.maxHeaderSize },
    );
    c.handler = handler;
    const pending = c.pending;
    c.pending = [];
    for (const e of pending) {
      if (e.type === 'data') handler.data(e.dir, e.data, e.tsNs);
      else handler.stop(e.dir);
    }
  }

  /** No protocol recognised the connection. */
  private unrecognised(c: Conn): void {
    c.problems.push({ reason: 'not-http', detail: this.unrecognisedDetail(c) });
    c.unrecognised = true;
    c.pending = [];
  }

  private unrecognisedDetail(c: Conn): string {
    const dirs: Direction[] = ['in', 'out'];
    return dirs
      .flatMap((d) => (c.recognition[d].rejectedWhy ? [`${d}: ${c.recognition[d].rejectedWhy!.join(', ')}`] : []))
      .join('; ');
  }

  // ---- output ------------------------------------------------------------------------------

  private emit(c: Conn, payload: ExchangePayload): void {
    // The identity is added to the payload object itself: a copy per exchange cost more than the rest of emit.
    const ex = payload as Exchange;
    ex.tls = c.tls;
    ex.conn = c.conn;
    ex.indexOnConn = c.index++;
    ex.tgid = c.tgid;
    const o = c.open;
    if (o) {
      if (o.remoteAddr !== undefined) ex.remoteAddr = o.remoteAddr;
      if (o.remotePort !== undefined) ex.remotePort = o.remotePort;
      if (o.localAddr !== undefined) ex.localAddr = o.localAddr;
      if (o.localPort !== undefined) ex.localPort = o.localPort;
    }
    this.stats.exchanges++;
    if (ex.role === 'incoming') this.stats.incoming++;
    else this.stats.outgoing++;
    this.opts.onExchange(ex);
  }

  private skip(s: SkippedStream): void {
    this.stats.skipped.push(s);
    try {
      this.opts.onSkipped?.(s);
    } catch {
      // a reporting callback must not break reconstruction
    }
  }

  /** End of a connection: flush its streams, let its protocol complete what ends with it, report the rest. */
  private close(c: Conn): void {
    this.conns.delete(c.key);
    for (const dir of ['in', 'out'] as const) this.onStream(c, dir, c.asm[dir].end());
    if (!c.handler && !c.unrecognised) {
      // Undecided: a protocol that wanted more bytes says how the connection ended for it.
      const waiting = this.protocols.find((p) =>
        (['in', 'out'] as const).some(
          (d) =>
            c.recognition[d].first.length > 0 &&
            p.detect(c.recognition[d].first, this.detectContext(c, d)).verdict === 'more',
        ),
      );
      if (waiting) this.hand(c, waiting);
      else if (c.problems.length === 0 && (c.recognition.in.rejectedWhy || c.recognition.out.rejectedWhy))
        c.problems.push({ reason: 'not-http', detail: this.unrecognisedDetail(c) });
    }
    const end = c.handler?.end();
    const consumed = end?.consumed ?? { in: 0, out: 0 };
    let unused = (['in', 'out'] as const).reduce(
      (n, d) => n + Math.max(0, c.asm[d].received - consumed[d]) + c.asm[d].undelivered,
      0,
    );
    unused = Math.max(unused, end?.unpairedBytes ?? 0);
    if (end?.handedOff) {
      if (unused > 0) this.skip({ conn: c.conn, reason: 'not-http', detail: end.handedOff, bytes: unused });
    } else if (c.problems.length > 0) {
      // One record per connection; the most severe problem is the cause, later ones are consequences.
      const main = [...c.problems].sort((a, b) => SEVERITY.indexOf(a.reason) - SEVERITY.indexOf(b.reason))[0]!;
      const detail = [...new Set(c.problems.map((p) => p.detail))].join('; ');
      this.skip({ conn: c.conn, reason: main.reason, detail, bytes: unused });
    }
  }
}
