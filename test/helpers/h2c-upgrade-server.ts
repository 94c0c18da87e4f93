// A cleartext HTTP/2 server that accepts `Upgrade: h2c` (RFC 7540 §3.2), for curl --http2 on an
// http:// URL. Node's http2 cannot answer the upgrade request (nghttp2's session_upgrade is not
// exposed), so the frames are written here: 101, the server's SETTINGS, then the answer to the
// upgrade request on stream 1 (HEADERS with literal HPACK fields, DATA with END_STREAM), a SETTINGS
// ACK for the client's preface, and GOAWAY once the client is done.

import * as net from 'node:net';

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK "literal header field without indexing, new name" (§6.2.2), no Huffman coding. */
function literal(name: string, value: string): Buffer {
  const n = Buffer.from(name);
  const v = Buffer.from(value);
  if (n.length > 126 || v.length > 126) throw new Error('literal too long for this helper');
  return Buffer.concat([Buffer.from([0x00, n.length]), n, Buffer.from([v.length]), v]);
}

export interface H2cUpgradeServer {
  port: number;
  close(): Promise<void>;
}

/** Answers each upgrade request with 200 and a JSON body naming its method and path. */
export async function startH2cUpgradeServer(host = '127.0.0.1'): Promise<H2cUpgradeServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let head = Buffer.alloc(0);
    let upgraded = false;
    let afterPreface = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      if (upgraded) {
        afterPreface = Buffer.concat([afterPreface, d]);
        // The client's SETTINGS (non-ACK) after its preface: acknowledge once; a GOAWAY from it ends the connection.
        for (let off = afterPreface.indexOf('PRI * HTTP/2.0') === 0 ? 24 : 0; afterPreface.length - off >= 9; ) {
          const len = afterPreface.readUIntBE(off, 3);
          if (afterPreface.length - off - 9 < len) break;
          const type = afterPreface[off + 3];
          const flags = afterPreface[off + 4]!;
          if (type === 0x4 && (flags & 0x1) === 0) socket.write(frame(0x4, 0x1, 0, Buffer.alloc(0)));
          if (type === 0x7) socket.end();
          off += 9 + len;
          afterPreface = afterPreface.subarray(off);
          off = 0;
        }
        return;
      }
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const text = head.subarray(0, end).toString('latin1');
      const [method, path] = text.split(' ');
      if (!/^upgrade:\s*h2c\s*$/im.test(text)) {
        socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
        return;
      }
      upgraded = true;
      afterPreface = head.subarray(end + 4);
      const body = Buffer.from(JSON.stringify({ method, path, over: 'h2c-upgrade' }));
      const headers = Buffer.concat([Buffer.from([0x88]), literal('content-type', 'application/json'), literal('x-upgraded', 'yes')]);
      socket.write(
        Buffer.concat([
          Buffer.from('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n'),
          frame(0x4, 0, 0, Buffer.alloc(0)),
          frame(0x1, 0x4, 1, headers),
          frame(0x0, 0x1, 1, body),
        ]),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
