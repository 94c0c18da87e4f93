// The mock server's side of protocols other than HTTP/1: which redirected connection goes to which
// protocol's `mocks.serve`, the context it is served with, and which of their mocks answered.
// Their hits and misses go into the HTTP matcher's lists, so the run report has one list of each
// in the order the calls came (a miss is shown under the test during which it happened).

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import tls, { type TLSSocket } from 'node:tls';
import type { LoadedDoc } from '../../format/protocol-docs.js';
import type { MockDestination, MockServeContext, Protocol } from '../../protocols/protocol.js';
import type { RunCa } from './ca.js';
import type { MockMatcher } from './matcher.js';

export class ProtocolMocks {
  /** Protocols that serve mocks, in registry order. */
  readonly serving: readonly Protocol[];
  /** ALPN ids their TLS offers, before HTTP/1's. */
  readonly alpn: readonly string[];
  private readonly mocks: readonly LoadedDoc[];
  private readonly used = new Set<string>();

  constructor(
    protocols: readonly Protocol[],
    mocks: readonly LoadedDoc[],
    private readonly matcher: MockMatcher,
    private readonly ca: RunCa,
    private readonly onMiss?: (message: string) => void,
    /** The mock server's HTTP request handler (answers from the HTTP mocks), for protocols that carry HTTP requests. */
    private readonly httpHandler?: (req: IncomingMessage, res: ServerResponse) => void,
  ) {
    this.serving = protocols.filter((p) => p.mocks.serve !== undefined);
    this.alpn = [...new Set(this.serving.flatMap((p) => p.mocks.alpn ?? []))];
    this.mocks = [...mocks].sort((a, b) => a.index - b.index);
  }

  /** The protocol that takes a connection whose client's first bytes are `first`. */
  byFirstBytes(first: Buffer): Protocol | undefined {
    return this.serving.find((p) => p.mocks.accepts(first));
  }

  /** The protocol that takes a TLS connection that negotiated `alpn`. */
  byAlpn(alpn: string | false | null | undefined): Protocol | undefined {
    if (typeof alpn !== 'string') return undefined;
    return this.serving.find((p) => p.mocks.alpn?.includes(alpn));
  }

  /** Hands the connection to the protocol, which owns it from now on. */
  serve(protocol: Protocol, socket: Duplex, destination: MockDestination): void {
    const ctx: MockServeContext = {
      mocks: this.mocks.filter((m) => m.protocol === protocol.name),
      destination,
      ...(this.httpHandler ? { http: this.httpHandler } : {}),
      startTls: (s, o) => this.startTls(s, o?.alpn),
      hit: (call) => {
        this.used.add(useKey(protocol.name, call.mock));
        this.matcher.noteServed(
          call.reused
            ? { mock: call.mock, method: call.method, url: call.url, reused: true }
            : { mock: call.mock, method: call.method, url: call.url },
        );
      },
      miss: (call) => {
        this.matcher.noteMiss(
          call.closest
            ? { method: call.method, url: call.url, closest: { ...call.closest }, message: call.message }
            : { method: call.method, url: call.url, message: call.message },
        );
        this.onMiss?.(call.message);
      },
    };
    // A protocol that forgets an error listener must not take the mock server down.
    socket.on('error', () => socket.destroy());
    try {
      protocol.mocks.serve!(socket, ctx);
    } catch (err) {
      socket.destroy(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** Names of their mocks that answered no call, in recorded order. */
  unused(): string[] {
    return this.mocks.filter((m) => !this.used.has(useKey(m.protocol, m.name))).map((m) => m.name);
  }

  private startTls(socket: Duplex, alpn: readonly string[] | undefined): Promise<TLSSocket> {
    return new Promise<TLSSocket>((resolve, reject) => {
      const s = new tls.TLSSocket(socket, {
        isServer: true,
        secureContext: tls.createSecureContext(this.ca.defaultCredentials),
        SNICallback: (servername, cb) => {
          try {
            cb(null, this.ca.contextFor(servername));
          } catch (err) {
            cb(err instanceof Error ? err : new Error(String(err)));
          }
        },
        ...(alpn && alpn.length > 0 ? { ALPNProtocols: [...alpn] } : {}),
      });
      s.once('secure', () => {
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', reject);
    });
  }
}

const useKey = (protocol: string, name: string): string => `${protocol}\0${name}`;
