// Real eBPF, real TLS: clients run in a fresh cgroup and talk to servers in this process (outside the
// cgroup); the bytes the capture reports must be exactly the bytes the servers received and sent.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { join } from 'node:path';
import { Cgroup, argvInCgroup } from '../src/native/cgroup.js';
import { CaptureSession, captureUnsupportedReason } from '../src/capture/capture-session.js';
import { uprobeMultiSupported } from '../src/native/libbpf.js';
import { decodeRecords } from '../src/capture/decode.js';
import { processState } from '../src/native/proc.js';
import type { CaptureEvent, DataEvent, OpenEvent } from '../src/model/events.js';

const certs = join(import.meta.dirname, '..', 'fixtures', 'certs');
const unsupported = captureUnsupportedReason();
if (unsupported) {
  if (process.env.TLSREC_REQUIRE_EBPF === '1')
    throw new Error(`eBPF capture required (TLSREC_REQUIRE_EBPF=1) but unavailable: ${unsupported}`);
  console.warn(`skipping eBPF capture tests: ${unsupported}`);
}
const describeEbpf = unsupported ? describe.skip : describe;

const BIG = randomBytes(5 * 1024 * 1024);

interface ServerConn {
  received: Buffer[];
  sent: Buffer[];
  remotePort: number;
}

/** A tiny HTTP/1.1 server over any stream socket that keeps every byte it received and sent. */
function handle(sock: Socket, conns: ServerConn[]): void {
  const conn: ServerConn = { received: [], sent: [], remotePort: sock.remotePort ?? 0 };
  conns.push(conn);
  let buf = Buffer.alloc(0);
  let answered = false;
  const send = (b: Buffer) => {
    conn.sent.push(b);
    sock.write(b);
  };
  sock.on('data', (d: Buffer) => {
    conn.received.push(d);
    buf = Buffer.concat([buf, d]);
    const end = buf.indexOf('\r\n\r\n');
    if (answered || end < 0) return;
    const head = buf.subarray(0, end).toString('latin1');
    const len = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
    if (buf.length < end + 4 + len) return;
    answered = true;
    const path = head.split(' ')[1] ?? '/';
    const body =
      path === '/big'
        ? BIG
        : path === '/echo'
          ? Buffer.from(
              createHash('sha256')
                .update(buf.subarray(end + 4))
                .digest('hex'),
            )
          : Buffer.from(`hello ${path}\n`);
    send(
      Buffer.from(
        `HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
      ),
    );
    send(body);
    sock.end();
  });
  sock.on('error', () => undefined);
}

function listen(server: Server, host: string): Promise<number> {
  return new Promise((resolve) => server.listen(0, host, () => resolve((server.address() as AddressInfo).port)));
}

function run(
  argv: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ pid: number; code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ pid: child.pid!, code, stdout, stderr }));
  });
}

const settle = (ms = 150) => new Promise((r) => setTimeout(r, ms));

/** Byte streams per connection and direction, rebuilt from chunks by position; gaps are an error. */
function streams(
  events: CaptureEvent[],
  tgids: Set<number>,
): Map<string, { conn: string; dir: string; source: string; bytes: Buffer }> {
  const parts = new Map<string, DataEvent[]>();
  for (const e of events) {
    if (e.type !== 'data' || !tgids.has(e.tgid)) continue;
    const k = `${e.tgid}/${e.source}/${e.connId.toString(16)}/${e.dir}`;
    let list = parts.get(k);
    if (!list) parts.set(k, (list = []));
    list.push(e);
  }
  const out = new Map<string, { conn: string; dir: string; source: string; bytes: Buffer }>();
  for (const [k, list] of parts) {
    list.sort((a, b) => (a.pos < b.pos ? -1 : a.pos > b.pos ? 1 : 0));
    let next = 0n;
    for (const e of list) {
      if (e.pos !== next) throw new Error(`gap in ${k}: expected pos ${next}, got ${e.pos}`);
      next += BigInt(e.data.length);
    }
    const [tgid, source, conn, dir] = k.split('/');
    out.set(k, {
      conn: `${tgid}/${source}/${conn}`,
      dir: dir!,
      source: source!,
      bytes: Buffer.concat(list.map((e) => e.data)),
    });
  }
  return out;
}

// Both ways of attaching uprobes: uprobe_multi links (Linux 6.6+, the default where the kernel has
// them) and perf-event links (older kernels, or TLSREC_UPROBE_MULTI=0); both when a process of the
// command maps a file (the default) and up front (TLSREC_ATTACH_ON_MAP=0).
const multiUnsupported = !unsupported && !uprobeMultiSupported();
if (multiUnsupported)
  console.warn('skipping the uprobe_multi capture tests: the kernel has no uprobe_multi links (Linux 6.6+)');
const modes = [
  { uprobeMulti: true, attachOnMap: true },
  { uprobeMulti: false, attachOnMap: true },
  { uprobeMulti: true, attachOnMap: false },
];
for (const { uprobeMulti, attachOnMap } of modes) {
  const describeMode = uprobeMulti && multiUnsupported ? describe.skip : describeEbpf;
  describeMode(
    `eBPF capture (root, BTF), uprobes as ${uprobeMulti ? 'uprobe_multi' : 'perf-event'} links, attached ${attachOnMap ? 'on first map' : 'up front'}`,
    () => {
      let tlsServer: Server;
      let plainServer: Server;
      let tlsPort = 0;
      let plainPort = 0;
      const tlsConns: ServerConn[] = [];
      const plainConns: ServerConn[] = [];
      let cgroup: Cgroup;
      let session: CaptureSession | undefined;
      const events: CaptureEvent[] = [];
      const warnings: string[] = [];
      const python = '/root/.pyenv/versions/3.11.7/bin/python3';
      const caEnv = { SSL_CERT_FILE: join(certs, 'ca.pem'), NODE_EXTRA_CA_CERTS: join(certs, 'ca.pem') };

      beforeAll(async () => {
        tlsServer = createTlsServer(
          { cert: readFileSync(join(certs, 'server.pem')), key: readFileSync(join(certs, 'server.key')) },
          (s) => handle(s, tlsConns),
        );
        plainServer = createNetServer((s) => handle(s, plainConns));
        tlsPort = await listen(tlsServer, '127.0.0.2');
        plainPort = await listen(plainServer, '127.0.0.3');
        cgroup = Cgroup.create('native-test');
        session = await CaptureSession.start({
          cgroup,
          uprobeMulti,
          attachOnMap,
          onRecords: (r) => events.push(...decodeRecords(r)),
          onWarning: (m) => warnings.push(m),
        });
        expect(session.multi).toBe(uprobeMulti);
        expect(session.onMap).toBe(attachOnMap);
      });

      afterAll(async () => {
        await session?.stop();
        await cgroup?.destroy();
        await new Promise((r) => tlsServer?.close(r));
        await new Promise((r) => plainServer?.close(r));
      });

      /** Run a client in the cgroup; return its captured streams and the server connections it made. */
      async function inCgroup(argv: string[], conns: ServerConn[], env: NodeJS.ProcessEnv = {}) {
        const before = conns.length;
        const r = await run(argvInCgroup(cgroup, argv), env);
        expect(r.code, r.stderr).toBe(0);
        await settle();
        return { r, made: conns.slice(before), s: streams(events, new Set([r.pid])) };
      }

      function expectExact(s: ReturnType<typeof streams>, made: ServerConn[], source: string) {
        expect(made.length).toBeGreaterThan(0);
        for (const c of made) {
          const rx = Buffer.concat(c.received);
          const tx = Buffer.concat(c.sent);
          const out = [...s.values()].find((x) => x.dir === 'out' && x.source === source && x.bytes.equals(rx));
          expect(
            out,
            `a captured ${source} 'out' stream equal to the ${rx.length} bytes the server received:\n${rx.toString('latin1').slice(0, 300)}\ncaptured: ${[...s.keys()].join(', ')}`,
          ).toBeDefined();
          const inn = s.get(`${out!.conn}/in`);
          expect(inn?.bytes.length).toBe(tx.length);
          expect(createHash('sha256').update(inn!.bytes).digest('hex')).toBe(
            createHash('sha256').update(tx).digest('hex'),
          );
        }
      }

      it('curl (libssl.so.3, SSL_read/SSL_write): exact request and response bytes', async () => {
        const { s, made } = await inCgroup(
          ['curl', '-sS', '--cacert', join(certs, 'ca.pem'), `https://127.0.0.2:${tlsPort}/curl?x=1`],
          tlsConns,
        );
        expectExact(s, made, 'tls');
        // No ciphertext: the TLS socket itself carries no data events.
        expect([...s.values()].filter((x) => x.source === 'socket')).toEqual([]);
      });

      it('python urllib (SSL_read_ex/SSL_write_ex via _ssl)', async () => {
        const code = `import urllib.request; print(urllib.request.urlopen('https://127.0.0.2:${tlsPort}/py').read().decode())`;
        const { s, made } = await inCgroup([python, '-c', code], tlsConns, caEnv);
        expectExact(s, made, 'tls');
      });

      it('node https.request and fetch (OpenSSL inside the node binary)', async () => {
        const code = `
        const https = require('node:https');
        https.get('https://127.0.0.2:${tlsPort}/node-https', (res) => { res.resume(); res.on('end', async () => {
          const r = await fetch('https://127.0.0.2:${tlsPort}/node-fetch', { method: 'POST', body: 'x'.repeat(1000) });
          await r.text();
        }); });`;
        const { s, made } = await inCgroup([process.execPath, '-e', code], tlsConns, caEnv);
        expect(made.length).toBe(2);
        expectExact(s, made, 'tls');
      });

      it('plain HTTP over a socket: open event with addresses, exact bytes, close', async () => {
        const { r, s, made } = await inCgroup(['curl', '-sS', `http://127.0.0.3:${plainPort}/plain`], plainConns);
        expectExact(s, made, 'socket');
        const opens = events.filter((e): e is OpenEvent => e.type === 'open' && e.tgid === r.pid);
        const open = opens.find((o) => o.remotePort === plainPort);
        expect(open).toMatchObject({
          role: 'connect',
          remoteAddr: '127.0.0.3',
          remotePort: plainPort,
          localAddr: '127.0.0.1',
        });
        expect(events.some((e) => e.type === 'close' && e.tgid === r.pid && e.connId === open!.connId)).toBe(true);
      });

      it('5 MB response and 5 MB upload byte-exact, nothing lost', async () => {
        const dl = await inCgroup(
          ['curl', '-sS', '-o', '/dev/null', '--cacert', join(certs, 'ca.pem'), `https://127.0.0.2:${tlsPort}/big`],
          tlsConns,
        );
        expectExact(dl.s, dl.made, 'tls');
        const code = `
        const https = require('node:https'); const body = Buffer.alloc(5 * 1024 * 1024, 7);
        const req = https.request('https://127.0.0.2:${tlsPort}/echo', { method: 'POST', headers: { 'content-length': body.length } }, (res) => res.resume());
        req.end(body);`;
        const up = await inCgroup([process.execPath, '-e', code], tlsConns, caEnv);
        expectExact(up.s, up.made, 'tls');
        const counters = session!.counters();
        expect(counters).toEqual({ ringbufFull: 0, readFault: 0, bytesLost: 0 });
      });

      it('ignores processes outside the cgroup, including one running at the same time', async () => {
        const outside = run(['curl', '-sS', '--cacert', join(certs, 'ca.pem'), `https://127.0.0.2:${tlsPort}/outside`]);
        const inside = inCgroup(
          ['curl', '-sS', '--cacert', join(certs, 'ca.pem'), `https://127.0.0.2:${tlsPort}/inside`],
          tlsConns,
        );
        const [o] = await Promise.all([outside, inside]);
        await settle();
        expect(events.filter((e) => e.tgid === o.pid)).toEqual([]);
        expect(events.filter((e) => e.tgid === process.pid)).toEqual([]);
        expect(events.some((e) => e.type === 'data' && e.data.includes('/outside'))).toBe(false);
        expect(events.some((e) => e.type === 'data' && e.data.includes('/inside'))).toBe(true);
      });

      it('app as server (accept): node http and https servers in the cgroup, clients outside', async () => {
        const code = `
        const http = require('node:http'); const https = require('node:https'); const fs = require('node:fs');
        const h = (req, res) => { let n = 0; req.on('data', (d) => n += d.length); req.on('end', () => { res.setHeader('x-got', String(n)); res.end('served ' + req.url); }); };
        const a = http.createServer(h).listen(0, '127.0.0.2', () => {
          const b = https.createServer({ cert: fs.readFileSync('${join(certs, 'server.pem')}'), key: fs.readFileSync('${join(certs, 'server.key')}') }, h).listen(0, '127.0.0.2', () => {
            console.log(a.address().port + ' ' + b.address().port);
          });
        });`;
        const argv = argvInCgroup(cgroup, [process.execPath, '-e', code]);
        const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
        try {
          const ports = await new Promise<number[]>((resolve) =>
            child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim().split(' ').map(Number))),
          );
          const { request: httpRequest } = await import('node:http');
          const { request: httpsRequest } = await import('node:https');
          const ask = (req: typeof httpRequest | typeof httpsRequest, port: number, path: string) =>
            new Promise<string>((resolve, reject) => {
              const r = req(
                {
                  host: '127.0.0.2',
                  port,
                  path,
                  method: 'POST',
                  ca: readFileSync(join(certs, 'ca.pem')),
                  agent: false,
                },
                (res) => {
                  let body = '';
                  res.on('data', (d) => (body += d));
                  res.on('end', () => resolve(body));
                },
              );
              r.on('error', reject);
              r.end('request body');
            });
          expect(await ask(httpRequest, ports[0]!, '/plain-in')).toBe('served /plain-in');
          expect(await ask(httpsRequest as typeof httpRequest, ports[1]!, '/tls-in')).toBe('served /tls-in');
          await settle();
          const s = streams(events, new Set([child.pid!]));
          const byText = (dir: string, source: string, text: string) =>
            [...s.values()].find((x) => x.dir === dir && x.source === source && x.bytes.includes(text));
          for (const [source, path] of [
            ['socket', '/plain-in'],
            ['tls', '/tls-in'],
          ] as const) {
            const inn = byText('in', source, `POST ${path} HTTP/1.1`);
            expect(inn, `${source} request captured`).toBeDefined();
            expect(inn!.bytes.toString('latin1')).toMatch(/\r\n\r\n(c\r\n)?request body/);
            const out = s.get(`${inn!.conn}/out`);
            expect(out?.bytes.toString('latin1')).toMatch(
              new RegExp(`^HTTP/1.1 200 OK\r\n[\\s\\S]*x-got: 12\r\n[\\s\\S]*served ${path}`),
            );
          }
          const accepts = events.filter(
            (e): e is OpenEvent => e.type === 'open' && e.tgid === child.pid && e.role === 'accept',
          );
          expect(accepts.map((a) => a.localPort).sort()).toEqual([...ports].sort());
          expect(accepts.every((a) => a.remoteAddr === '127.0.0.1' || a.remoteAddr === '127.0.0.2')).toBe(true);
          // The TLS server socket's ciphertext is not recorded.
          expect([...s.values()].filter((x) => x.source === 'socket' && x.bytes.includes('tls-in'))).toEqual([]);
        } finally {
          child.kill('SIGKILL');
        }
      });

      it('reports exec events for processes in scope', async () => {
        const r = await run(argvInCgroup(cgroup, ['/bin/true']));
        await settle();
        expect(events.some((e) => e.type === 'exec' && e.tgid === r.pid)).toBe(true);
      });

      it('sleeps while nothing happens: a few passes a second, not a timer every few ms', async () => {
        await settle(300); // the tests before have ended; nothing runs in the cgroup
        const before = session!.drainPasses;
        await settle(1000);
        // Draining from a timer every 2-10 ms made 100-500 passes a second.
        expect(session!.drainPasses - before).toBeLessThan(20);
        // And the first record after the quiet spell is drained at once (the kernel's wake-up), not
        // after the loop's 1 s safety timeout: settle() waits 150 ms.
        const r = await run(argvInCgroup(cgroup, ['/bin/true']));
        await settle();
        expect(events.some((e) => e.type === 'exec' && e.tgid === r.pid)).toBe(true);
      });

      it('attached without a warning', () => {
        expect(warnings).toEqual([]);
        // On first map, every process was stopped at least once (its program) and let go again.
        if (attachOnMap) expect(session!.attachStats().stops).toBeGreaterThan(0);
        else expect(session!.attachStats().stops).toBe(0);
      });
    },
  );
}

describeEbpf('eBPF capture loss accounting', () => {
  it('counts what a full ring buffer drops and leaves visible gaps', async () => {
    const cgroup = Cgroup.create('native-loss');
    const server = createTlsServer(
      { cert: readFileSync(join(certs, 'server.pem')), key: readFileSync(join(certs, 'server.key')) },
      (s) => handle(s, []),
    );
    const port = await listen(server, '127.0.0.2');
    const events: CaptureEvent[] = [];
    // 64 KiB ring polled every 2 s: a 5 MB download cannot fit.
    const session = await CaptureSession.start({
      cgroup,
      ringbufBytes: 64 * 1024,
      pollMs: 2000,
      onRecords: (r) => events.push(...decodeRecords(r)),
    });
    try {
      const r = await run(
        argvInCgroup(cgroup, [
          'curl',
          '-sS',
          '-o',
          '/dev/null',
          '--cacert',
          join(certs, 'ca.pem'),
          `https://127.0.0.2:${port}/big`,
        ]),
      );
      expect(r.code, r.stderr).toBe(0);
    } finally {
      // Two stops at once (Ctrl-C twice): the second waits for the first and gets the same tally.
      const [counters, again] = await Promise.all([session.stop(), session.stop()]);
      expect(again).toEqual(counters);
      await cgroup.destroy();
      await new Promise((r) => server.close(r));
      expect(counters.ringbufFull).toBeGreaterThan(0);
      expect(counters.bytesLost).toBeGreaterThan(0);
      const data = events.filter((e): e is DataEvent => e.type === 'data' && e.dir === 'in' && e.source === 'tls');
      const got = data.reduce((n, e) => n + e.data.length, 0);
      expect(got).toBeLessThan(BIG.length);
      expect(session.counters()).toEqual(counters); // stop() is idempotent and keeps the final tally
    }
  });
});

/** Bytes of the text mapping of `file` in `pid` that are private copies: a uprobe's breakpoint writes one (smaps "Anonymous"). */
function probedBytes(pid: number, file: RegExp): number {
  const smaps = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  const at = smaps.split('\n').findIndex((l) => / r-xp /.test(l) && file.test(l));
  expect(at, `a text mapping of ${file} in process ${pid}`).toBeGreaterThanOrEqual(0);
  const anon = smaps
    .split('\n')
    .slice(at + 1)
    .find((l) => l.startsWith('Anonymous:'));
  return Number(/(\d+) kB/.exec(anon!)![1]) * 1024;
}

describeEbpf('eBPF capture: probes only in files the command maps', () => {
  it('leaves a libssl user outside the cgroup untouched until a process of the command maps libssl', async () => {
    // A process outside the cgroup with the system libssl mapped (Debian's python3 links it).
    const outside = spawn('/usr/bin/python3', ['-c', 'import ssl, sys; print(flush=True); sys.stdin.read()'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    await new Promise((r) => outside.stdout.once('data', r));
    const libssl = /libssl\.so/;
    const cgroup = Cgroup.create('native-onmap');
    const session = await CaptureSession.start({ cgroup, attachOnMap: true, onRecords: () => undefined });
    try {
      expect(probedBytes(outside.pid!, libssl)).toBe(0);
      // A node command: its own OpenSSL is probed, the system libssl still is not.
      const node = await run(argvInCgroup(cgroup, [process.execPath, '-e', 'require("node:https")']));
      expect(node.code, node.stderr).toBe(0);
      expect(session.attachStats()).toMatchObject({ filesAttached: 1 });
      expect(probedBytes(outside.pid!, libssl)).toBe(0);
      // curl maps the system libssl: the probes go in, in every process that maps it.
      const curl = await run(argvInCgroup(cgroup, ['curl', '-sS', '-o', '/dev/null', 'file:///etc/hostname']));
      expect(curl.code, curl.stderr).toBe(0);
      expect(session.attachStats()).toMatchObject({ filesAttached: 2 });
      expect(probedBytes(outside.pid!, libssl)).toBeGreaterThan(0);
      // Files looked at once stop nobody again.
      const { stops } = session.attachStats();
      await run(argvInCgroup(cgroup, ['curl', '-sS', '-o', '/dev/null', 'file:///etc/hostname']));
      expect(session.attachStats().stops).toBe(stops);
    } finally {
      await session.stop();
      await cgroup.destroy();
      outside.kill();
    }
  });

  it('lets a process it stopped go on when the recording stops before looking at its file', async () => {
    const cgroup = Cgroup.create('native-onmap-stop');
    const session = await CaptureSession.start({ cgroup, attachOnMap: true, onRecords: () => undefined });
    try {
      // /bin/sleep is mapped by nothing tlsrec has looked at: its exec stops it. The event loop is
      // held meanwhile, so tlsrec cannot look at it before stop().
      const [bin, ...args] = argvInCgroup(cgroup, ['/bin/sleep', '0']);
      const child = spawn(bin!, args);
      const exited = new Promise<number | null>((r) => child.once('exit', r));
      const deadline = Date.now() + 5000;
      let seen: string | undefined;
      while (
        Date.now() < deadline &&
        !(seen === 'T' && readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').startsWith('/bin/sleep'))
      ) {
        seen = processState(child.pid!);
      }
      expect(seen, 'stopped at its exec').toBe('T');
      await session.stop();
      expect(await exited).toBe(0);
      expect(session.attachStats().stops).toBe(1);
    } finally {
      await session.stop();
      await cgroup.destroy();
    }
  });
});
