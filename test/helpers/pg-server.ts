// A throwaway Postgres cluster for tests: initdb into a temp dir (as the postgres user, since the
// server refuses root), SCRAM-SHA-256 password authentication on 127.0.0.1, a free port, a user
// and a database the test names. stop() shuts it down and removes the directory.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import pg from 'pg';

export interface PgServer {
  port: number;
  user: string;
  password: string;
  database: string;
  /** Stops the server (fast shutdown); the data directory stays until remove(). */
  stop(): Promise<void>;
  /** Starts it again on the same port after stop(). */
  start(): Promise<void>;
  remove(): Promise<void>;
}

/** The directory of the newest installed server binaries (Debian's postgresql package), or undefined. */
export function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!fs.existsSync(root)) return undefined;
  const versions = fs
    .readdirSync(root)
    .filter((v) => fs.existsSync(path.join(root, v, 'bin', 'postgres')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? path.join(root, versions[0], 'bin') : undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`postgres did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * `tls`: also accept TLS (SSLRequest), with the fixture certificate (fixtures/certs/server.pem,
 * for localhost and 127.0.0.1, signed by fixtures/certs/ca.pem).
 */
export async function startPgServer(
  opts: { user?: string; password?: string; database?: string; tls?: boolean } = {},
): Promise<PgServer> {
  const bin = postgresBinDir();
  if (!bin)
    throw new Error('Postgres server binaries not found under /usr/lib/postgresql (apt-get install postgresql)');
  const user = opts.user ?? 'tlsrec_app';
  const password = opts.password ?? 'app-secret-pw';
  const database = opts.database ?? 'tlsrec_app';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsrec-pg-'));
  fs.chmodSync(dir, 0o755);
  const data = path.join(dir, 'data');
  const pwfile = path.join(dir, 'pw');
  fs.writeFileSync(pwfile, `${password}\n`);
  const tlsArgs: string[] = [];
  if (opts.tls) {
    const certs = new URL('../../fixtures/certs/', import.meta.url);
    fs.copyFileSync(new URL('server.pem', certs), path.join(dir, 'server.pem'));
    fs.copyFileSync(new URL('server.key', certs), path.join(dir, 'server.key'));
    fs.chmodSync(path.join(dir, 'server.key'), 0o600);
    tlsArgs.push(
      '-c',
      'ssl=on',
      '-c',
      `ssl_cert_file=${path.join(dir, 'server.pem')}`,
      '-c',
      `ssl_key_file=${path.join(dir, 'server.key')}`,
    );
  }
  execFileSync('chown', ['-R', 'postgres:postgres', dir]);
  const asPostgres = (cmd: string, args: string[]) =>
    execFileSync('runuser', ['-u', 'postgres', '--', path.join(bin, cmd), ...args], { stdio: 'pipe' });
  // The bootstrap superuser is the test's user: it creates its own database, nothing else is needed.
  asPostgres('initdb', [
    '-D',
    data,
    '-U',
    user,
    '--pwfile',
    pwfile,
    '--auth=scram-sha-256',
    '-E',
    'UTF8',
    '--locale=C',
  ]);
  fs.rmSync(pwfile);
  const port = await freePort();
  let proc: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    proc = spawn(
      'runuser',
      [
        '-u',
        'postgres',
        '--',
        path.join(bin, 'postgres'),
        '-D',
        data,
        '-p',
        String(port),
        '-h',
        '127.0.0.1',
        '-k',
        dir,
        '-c',
        'fsync=off',
        ...tlsArgs,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<never>((_, reject) =>
      proc!.once('exit', (code) => reject(new Error(`postgres exited (${code}): ${stderr.slice(-500)}`))),
    );
    await Promise.race([waitForPort(port, 20_000), exited]);
  };
  const stop = async (): Promise<void> => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise<void>((r) => p.once('exit', () => r()));
    // runuser does not pass signals on: pg_ctl signals the postmaster (fast shutdown) and waits.
    try {
      asPostgres('pg_ctl', ['-D', data, 'stop', '-m', 'fast', '-w']);
    } catch {
      p.kill('SIGKILL');
    }
    await gone;
  };
  await start();
  // The database the app uses, created over the wire with the user's password.
  const admin = new pg.Client({ host: '127.0.0.1', port, user, password, database: 'postgres' });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${database.replace(/"/g, '""')}"`);
  } finally {
    await admin.end();
  }
  return {
    port,
    user,
    password,
    database,
    stop,
    start,
    remove: async () => {
      await stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
