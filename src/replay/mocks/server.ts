// The mock server: ONE TCP port on 127.0.0.1 that speaks plain HTTP/1.1 and HTTP/1.1 over TLS, since
// the redirect sends every outgoing connection of the app here whatever its original port. The
// first byte decides: 0x16 (a TLS handshake record) goes to a TLS server that signs a certificate
// for the SNI, anything else to the HTTP parser — unless another protocol takes the connection
// (protocol-mocks.ts): by the first plaintext bytes (its `mocks.accepts`), or, inside TLS, by the
// ALPN id negotiated (its `mocks.alpn`) or else by the first decrypted bytes.

import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import type { LoadedDoc } from '../../format/protocol-docs.js';
import type { Protocol } from '../../protocols/protocol.js';
import { decodeContentEncoding, encodeContentEncoding } from '../../protocols/http1/content-encoding.js';
import { EnvironmentError, causeText } from '../../errors.js';
import type { RunCa } from './ca.js';
import type { Mock } from '../../format/types.js';
import { splitTarget, type IncomingCall, type MockMatcher } from './matcher.js';
import { ProtocolMocks } from './protocol-mocks.js';

export interface MockServerOptions {
  matcher: MockMatcher;
  ca: RunCa;
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** Called for each miss with the one-line explanation (for logs). */
  onMiss?: (message: string) => void;
  /** Fills in a response's variables ({{ .token }}) with this run's values before it is sent. */
  fillResponse?: (response: Mock['response']) => Mock['response'];
  /** Protocols besides HTTP/1: those with `mocks.serve` are handed the connections they take. */
  protocols?: readonly Protocol[];
  /** Their mocks (TestSet.protocolMocks), in recorded order. */
  protocolMocks?: readonly LoadedDoc[];
}

export interface MockServer {
  readonly port: number;
  /** Names of the other protocols' mocks that answered no call (HTTP's are in the matcher's report). */
  unusedProtocolMocks(): string[];
  close(): Promise<void>;
}

const TLS_HANDSHAKE = 0x16;
// Framing headers are recomputed for the bytes actually sent; hop-by-hop ones belong to the old connection.
const DROP_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive']);

export async function startMockServer(opts: MockServerOptions): Promise<MockServer> {
  const { matcher, ca } = opts;
  const sockets = new Set<Socket>();
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(`tlsrec mock server error: ${causeText(err)}\n`);
      } else res.destroy();
    });
  };
  // HTTP/2 requests (a protocol's `serve` speaks the framing) are answered from the HTTP mocks too.
  const others = new ProtocolMocks(opts.protocols ?? [], opts.protocolMocks ?? [], matcher, ca, opts.onMiss, onRequest);

  const httpServer = http.createServer({ keepAliveTimeout: 60_000 }, onRequest);
  // Clients that keep a socket idle must not race a close from our side.
  httpServer.headersTimeout = 60_000;

  const tlsServer = tls.createServer({
    ...ca.defaultCredentials,
    handshakeTimeout: 10_000,
    // Other protocols' ids first: OpenSSL takes the first of the server's list the client offers.
    ALPNProtocols: [...others.alpn, 'http/1.1'],
    SNICallback: (servername, cb) => {
      try {
        cb(null, ca.contextFor(servername));
      } catch (err) {
        cb(err instanceof Error ? err : new Error(String(err)));
      }
    },
  });
  tlsServer.on('secureConnection', (s: TLSSocket) => {
    const destination = {
      ...(typeof s.servername === 'string' ? { servername: s.servername } : {}),
      ...(typeof s.alpnProtocol === 'string' ? { alpn: s.alpnProtocol } : {}),
    };
    const byAlpn = others.byAlpn(s.alpnProtocol);
    if (byAlpn) others.serve(byAlpn, s, destination);
    else if (others.serving.length === 0) httpServer.emit('connection', s);
    else {
      s.on('error', () => s.destroy());
      s.once('data', (first: Buffer) => {
        s.pause();
        s.unshift(first);
        const p = others.byFirstBytes(first);
        if (p) others.serve(p, s, destination);
        else httpServer.emit('connection', s);
        s.resume();
      });
    }
  });
  tlsServer.on('tlsClientError', (_err, s) => {
    // A failed handshake (a client that rejects our certificate, or not TLS at all): drop it.
    s.destroy();
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    const ce = req.headers['content-encoding'];
    const body = decodeContentEncoding(raw, Array.isArray(ce) ? ce.join(', ') : ce).body;
    const sock = req.socket as Socket & Partial<TLSSocket>;
    const encrypted = sock.encrypted === true;
    const servername = encrypted && typeof sock.servername === 'string' ? sock.servername : undefined;
    const { path, query } = splitTarget(req.url ?? '/');
    const headers: Array<[string, string]> = [];
    // (HTTP/2's pseudo-headers are not headers: :authority is the host)
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2)
      if (!req.rawHeaders[i]!.startsWith(':')) headers.push([req.rawHeaders[i]!, req.rawHeaders[i + 1]!]);
    const h2 = req.httpVersionMajor === 2;
    const authority = h2 ? req.headers[':authority'] : undefined;
    const call: IncomingCall = {
      method: req.method ?? 'GET',
      scheme: encrypted ? 'https' : 'http',
      host: req.headers.host ?? (typeof authority === 'string' ? authority : undefined) ?? servername ?? '',
      path,
      query,
      headers,
      body,
    };
    const outcome = matcher.match(call);
    if (outcome.kind === 'miss') {
      opts.onMiss?.(outcome.message);
      const text = Buffer.from(`tlsrec: ${outcome.message}\n`);
      const missHeaders = {
        'content-type': 'text/plain; charset=utf-8',
        'content-length': String(text.length),
        'x-tlsrec-mock': 'miss',
      };
      // HTTP/2 has no reason phrase
      if (h2) res.writeHead(502, missHeaders);
      else res.writeHead(502, 'Bad Gateway', missHeaders);
      res.end(text);
      return;
    }
    const r = opts.fillResponse ? opts.fillResponse(outcome.mock.response) : outcome.mock.response;
    const flat: string[] = [];
    let contentEncoding: string | undefined;
    for (const [k, v] of r.headers) {
      const lk = k.toLowerCase();
      if (DROP_HEADERS.has(lk)) continue;
      if (lk === 'content-encoding') contentEncoding = contentEncoding ? `${contentEncoding}, ${v}` : v;
      flat.push(k, v);
    }
    const noBody = r.status < 200 || r.status === 204 || r.status === 304;
    const payload = noBody ? Buffer.alloc(0) : encodeContentEncoding(r.body.bytes, contentEncoding);
    if (!noBody) flat.push('Content-Length', String(payload.length));
    if (h2) res.writeHead(r.status, flat);
    else res.writeHead(r.status, r.statusMessage || http.STATUS_CODES[r.status] || '', flat);
    res.end(payload);
  }

  const dispatch = (socket: Socket): void => {
    socket.once('data', (first: Buffer) => {
      // Put the first bytes back and hand the socket over: tls.TLSSocket and the HTTP parser both
      // read what is already buffered before reading from the handle.
      socket.pause();
      socket.unshift(first);
      // TLSSocket drains the buffer itself on the next tick: resuming here would emit the
      // ClientHello to nobody. The HTTP server only adds a 'data' listener, so it needs a resume.
      const other = first[0] === TLS_HANDSHAKE ? undefined : others.byFirstBytes(first);
      if (first[0] === TLS_HANDSHAKE) tlsServer.emit('connection', socket);
      else if (other) {
        others.serve(other, socket, {});
        socket.resume();
      } else {
        httpServer.emit('connection', socket);
        socket.resume();
      }
    });
  };

  // An app with HTTPS_PROXY/HTTP_PROXY set connects to its proxy (redirected here) and asks for a
  // tunnel: grant it and serve what comes through it like a direct connection. The CONNECT itself
  // is no call of the app, so it is not matched.
  httpServer.on('connect', (_req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) socket.unshift(head);
    dispatch(socket);
  });

  const front = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    dispatch(socket);
  });

  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    front.once('error', (err) =>
      reject(
        new EnvironmentError(`mock server cannot listen on ${host}: ${causeText(err)}`, {
          stage: 'start mock server',
          cause: err,
        }),
      ),
    );
    front.listen(0, host, () => resolve());
  });
  const port = (front.address() as AddressInfo).port;

  let closed: Promise<void> | undefined;
  return {
    port,
    unusedProtocolMocks: () => others.unused(),
    close(): Promise<void> {
      closed ??= new Promise<void>((resolve) => {
        front.close(() => resolve());
        httpServer.closeAllConnections();
        for (const s of sockets) s.destroy();
      });
      return closed;
    },
  };
}
