// The attach policy (src/capture/attach-policy.ts) on its own: a made-up machine (files with and
// without OpenSSL, processes with states and mappings, a clock) stands in for /proc, stat and ELF,
// a list of CAP_MAP records for the `mapped` ring, and a recorder of attach/markKnown calls for the
// BPF object. Which files get probes, when a stopped process is resumed, and what is marked known.
// The real stops, uprobes and libraries are covered by test/native-capture.test.ts.
import { afterEach, describe, expect, it } from 'vitest';
import { AttachPolicy, OPENSSL_PROBES, type ProcessSystem, STOP_WAIT_MS } from '../src/capture/attach-policy.js';
import { CAP_EVENT, CAP_HDR_SIZE, FILE_KEY, RecordType } from '../src/capture/record-layout.js';
import type { RecordSource } from '../src/capture/ring-drainer.js';
import type { SslFunction } from '../src/native/elf.js';
import type { ExecutableMapping } from '../src/native/proc.js';
import { encodeRecords } from './helpers/ring-records.js';

const EV = CAP_EVENT.fields;

/** OpenSSL at made-up offsets: every function the probes go on. */
const OPENSSL = new Map<SslFunction, number>(OPENSSL_PROBES.map((p, i) => [p.fn, 0x1000 * (i + 1)]));

interface FakeFile {
  dev: number;
  ino: bigint;
  openssl?: Map<SslFunction, number>;
}

interface FakeProcess {
  state: string;
  exe?: string;
  maps: string[];
}

class FakeMachine implements ProcessSystem {
  files = new Map<string, FakeFile>();
  procs = new Map<number, FakeProcess>();
  resumed: number[] = [];
  looked: string[] = [];
  /** Paths under /proc/PID/root that exist (processes in another mount namespace). */
  rootPaths = new Set<string>();
  clock = 0;
  onMappingsRead: ((pid: number) => void) | undefined;

  file(path: string, ino: number, openssl?: Map<SslFunction, number>): FakeFile {
    const f = { dev: 8 << 20, ino: BigInt(ino), openssl };
    this.files.set(path, f);
    return f;
  }

  private plain(path: string): string {
    return path.replace(/^\/proc\/\d+\/root/, '');
  }

  fileId(path: string): string | undefined {
    const f = this.files.get(this.plain(path));
    return f && `${f.dev}:${f.ino}`;
  }

  opensslOffsets(path: string): Map<SslFunction, number> | undefined {
    this.looked.push(path);
    return this.files.get(this.plain(path))?.openssl;
  }

  processState(pid: number): string | undefined {
    return this.procs.get(pid)?.state;
  }

  processMappings(pid: number | 'self'): ExecutableMapping[] {
    if (pid === 'self')
      return [...this.files]
        .filter(([p]) => p.startsWith('/self/'))
        .map(([path, f]) => ({ path, dev: f.dev, ino: f.ino }));
    this.onMappingsRead?.(pid);
    return (this.procs.get(pid)?.maps ?? []).map((path) => {
      const f = this.files.get(path)!;
      return { path, dev: f.dev, ino: f.ino };
    });
  }

  processExe(pid: number): string | undefined {
    return this.procs.get(pid)?.exe;
  }

  exists(path: string): boolean {
    return this.rootPaths.has(path);
  }

  resume(pid: number): void {
    this.resumed.push(pid);
    const p = this.procs.get(pid);
    if (p) p.state = 'S';
  }

  now(): number {
    return this.clock;
  }
}

/** The `mapped` ring: CAP_MAP records (tgid = the stopped process, conn = inode, pos = device). */
class MappedRing implements RecordSource {
  pending: Buffer[] = [];

  stopped(pid: number, f: { dev: number; ino: bigint }): void {
    const rec = Buffer.alloc(CAP_HDR_SIZE);
    rec[EV.type.offset] = RecordType.CAP_MAP;
    rec.writeUInt32LE(pid, EV.tgid.offset);
    rec.writeUInt32LE(pid, EV.tid.offset);
    rec.writeBigUInt64LE(f.ino, EV.conn.offset);
    rec.writeBigUInt64LE(BigInt(f.dev), EV.pos.offset);
    this.pending.push(rec);
  }

  drain(onRecord: (record: Buffer) => void): void {
    for (const r of this.pending.splice(0)) onRecord(r);
  }
}

const policies: AttachPolicy[] = [];
afterEach(() => {
  for (const p of policies.splice(0)) p.stop();
});

function setup(onMap: boolean, opts: { failAttach?: string; failMarkKnown?: boolean; pids?: number[] } = {}) {
  const machine = new FakeMachine();
  const mapped = new MappedRing();
  const attached: string[] = [];
  const known: Array<{ ino: bigint; dev: number }> = [];
  const warnings: string[] = [];
  const policy = new AttachPolicy({
    onMap,
    mapped: onMap ? mapped : undefined,
    pids: () => opts.pids ?? [],
    warn: (m) => warnings.push(m),
    system: machine,
    target: {
      attachUprobe(program, file, offset, retprobe) {
        if (program === opts.failAttach) throw new Error('EINVAL');
        attached.push(`${program}${retprobe ? ' (ret)' : ''} ${file}+0x${offset.toString(16)}`);
      },
      markKnown(key) {
        if (opts.failMarkKnown) throw new Error('E2BIG');
        known.push({
          ino: key.readBigUInt64LE(FILE_KEY.fields.ino.offset),
          dev: key.readUInt32LE(FILE_KEY.fields.dev.offset),
        });
      },
    },
  });
  policies.push(policy);
  return { machine, mapped, attached, known, warnings, policy };
}

/** The uprobes of one file with OpenSSL at OPENSSL's offsets. */
function probesIn(file: string): string[] {
  return OPENSSL_PROBES.flatMap((p) => {
    const at = `${file}+0x${OPENSSL.get(p.fn)!.toString(16)}`;
    return p.exit ? [`${p.enter} ${at}`, `${p.exit} (ret) ${at}`] : [`${p.enter} ${at}`];
  });
}

describe('attach on first map', () => {
  it('at start looks at the candidates once, attaches nothing, and marks what tlsrec itself maps as known', () => {
    const { machine, policy, attached, known } = setup(true);
    machine.file('/usr/lib/libssl.so.3', 11, OPENSSL);
    machine.file('/usr/bin/node', 12, OPENSSL);
    const libc = machine.file('/self/libc.so.6', 13);
    machine.file('/self/node', 12, OPENSSL); // the same file as /usr/bin/node, seen through another path
    policy.start(['/usr/lib/libssl.so.3', '/usr/bin/node', '/usr/lib/libssl.so.3']);
    expect(machine.looked).toEqual(['/usr/lib/libssl.so.3', '/usr/bin/node', '/self/libc.so.6']);
    expect(attached).toEqual([]);
    // A file with OpenSSL stays unknown: a process of the command that maps it stops until it has probes.
    expect(known).toEqual([{ ino: libc.ino, dev: libc.dev }]);
  });

  it('a process stopped mapping libssl: probes in, file marked known, process resumed, the wait counted', () => {
    const { machine, mapped, policy, attached, known } = setup(true);
    const libssl = machine.file('/usr/lib/libssl.so.3', 11, OPENSSL);
    machine.file('/usr/bin/python3', 14);
    machine.procs.set(100, { state: 'R', maps: ['/usr/bin/python3', '/usr/lib/libssl.so.3'] });
    policy.start([]);
    machine.clock = 50;
    mapped.stopped(100, libssl);
    policy.pollMapped(); // its stop has not taken effect yet
    expect(machine.resumed).toEqual([]);
    machine.procs.get(100)!.state = 't';
    machine.clock = 53;
    policy.pollMapped();
    expect(attached).toEqual(probesIn('/usr/lib/libssl.so.3'));
    expect(known).toEqual([{ ino: libssl.ino, dev: libssl.dev }]);
    expect(machine.resumed).toEqual([100]);
    expect(policy.waitingCount).toBe(0);
    expect(policy.stats()).toEqual({ filesAttached: 1, stops: 1, stoppedMs: 3 });
  });

  it('attaches through /proc/PID/root when the file is there (another mount namespace)', () => {
    const { machine, mapped, policy, attached } = setup(true);
    const libssl = machine.file('/usr/lib/libssl.so.3', 11, OPENSSL);
    machine.procs.set(100, { state: 'T', maps: ['/usr/lib/libssl.so.3'] });
    machine.rootPaths.add('/proc/100/root/usr/lib/libssl.so.3');
    policy.start([]);
    mapped.stopped(100, libssl);
    policy.pollMapped();
    expect(attached).toEqual(probesIn('/proc/100/root/usr/lib/libssl.so.3'));
  });

  it('waits for the stop to take effect, up to STOP_WAIT_MS; a process that is gone is dropped', () => {
    const { machine, mapped, policy, attached } = setup(true);
    const libssl = machine.file('/usr/lib/libssl.so.3', 11, OPENSSL);
    machine.procs.set(100, { state: 'R', maps: ['/usr/lib/libssl.so.3'] });
    machine.procs.set(101, { state: 'Z', maps: [] });
    policy.start([]);
    mapped.stopped(100, libssl);
    mapped.stopped(101, libssl);
    mapped.stopped(102, libssl); // exited before tlsrec looked
    policy.pollMapped();
    expect(policy.waitingCount).toBe(1);
    expect(attached).toEqual([]);
    machine.clock = STOP_WAIT_MS - 1;
    policy.pollMapped();
    expect(machine.resumed).toEqual([]);
    machine.clock = STOP_WAIT_MS; // a frozen cgroup or a tracer: looked at anyway
    policy.pollMapped();
    expect(attached).toEqual(probesIn('/usr/lib/libssl.so.3'));
    expect(machine.resumed).toEqual([100]);
    expect(policy.stats().stops).toBe(3);
  });

  it('a file the maps name differently (overlayfs): everything the process maps is looked at', () => {
    const { machine, mapped, policy, attached, known } = setup(true);
    machine.file('/usr/bin/curl', 20);
    machine.file('/usr/lib/libssl.so.3', 11, OPENSSL);
    machine.procs.set(100, { state: 'T', exe: '/usr/bin/curl', maps: ['/usr/lib/libssl.so.3'] });
    policy.start([]);
    mapped.stopped(100, { dev: 99 << 20, ino: 5n }); // the kernel's name for it, not in the maps
    policy.pollMapped();
    expect(attached).toEqual(probesIn('/usr/lib/libssl.so.3'));
    expect(known).toEqual([{ ino: 5n, dev: 99 << 20 }]);
    expect(machine.resumed).toEqual([100]);
  });

  it('a file the kernel could not name (ino 0) is never marked known, so that it keeps triggering scans', () => {
    const { machine, mapped, policy, known } = setup(true);
    machine.procs.set(100, { state: 'T', maps: [] });
    policy.start([]);
    mapped.stopped(100, { dev: 0, ino: 0n });
    policy.pollMapped();
    expect(known).toEqual([]);
    expect(machine.resumed).toEqual([100]);
  });

  it('another thread stopped meanwhile: no SIGCONT (it would cancel that stop) until its file is looked at too', () => {
    const { machine, mapped, policy, attached, known } = setup(true);
    const libssl = machine.file('/usr/lib/libssl.so.3', 11, OPENSSL);
    const libcrypto = machine.file('/usr/lib/libcrypto.so.3', 12);
    const knownAtResume: number[] = [];
    const resume = machine.resume.bind(machine);
    machine.resume = (pid) => {
      knownAtResume.push(known.length);
      resume(pid);
    };
    machine.procs.set(100, { state: 'T', maps: ['/usr/lib/libssl.so.3', '/usr/lib/libcrypto.so.3'] });
    policy.start([]);
    mapped.stopped(100, libssl);
    let once = true;
    machine.onMappingsRead = () => {
      if (once) mapped.stopped(100, libcrypto); // while tlsrec looks at the first file
      once = false;
    };
    policy.pollMapped();
    // One SIGCONT, sent once both files were looked at and marked known.
    expect(machine.resumed).toEqual([100]);
    expect(knownAtResume).toEqual([2]);
    expect(known).toEqual([
      { ino: libssl.ino, dev: libssl.dev },
      { ino: libcrypto.ino, dev: libcrypto.dev },
    ]);
    expect(attached).toEqual(probesIn('/usr/lib/libssl.so.3'));
    expect(policy.stats().stops).toBe(2); // two threads stopped
  });

  it('a file is looked at and attached once, however many processes map it', () => {
    const { machine, mapped, policy, attached } = setup(true);
    const libssl = machine.file('/usr/lib/libssl.so.3', 11, OPENSSL);
    for (const pid of [100, 101]) machine.procs.set(pid, { state: 'T', maps: ['/usr/lib/libssl.so.3'] });
    policy.start([]);
    mapped.stopped(100, libssl);
    mapped.stopped(101, libssl);
    policy.pollMapped();
    expect(machine.looked).toEqual(['/usr/lib/libssl.so.3']);
    expect(attached).toEqual(probesIn('/usr/lib/libssl.so.3'));
    expect(machine.resumed).toEqual([100, 101]);
  });

  it('a probe the kernel refuses is a warning; the other probes still go on', () => {
    const { machine, mapped, policy, attached, warnings } = setup(true, { failAttach: 'ssl_write_enter' });
    const libssl = machine.file('/usr/lib/libssl.so.3', 11, OPENSSL);
    machine.procs.set(100, { state: 'T', maps: ['/usr/lib/libssl.so.3'] });
    policy.start([]);
    mapped.stopped(100, libssl);
    policy.pollMapped();
    expect(warnings).toEqual(['cannot attach to SSL_write in /usr/lib/libssl.so.3: EINVAL']);
    expect(attached).toEqual(probesIn('/usr/lib/libssl.so.3').filter((p) => !/^ssl_write_(enter|exit) /.test(p)));
    expect(machine.resumed).toEqual([100]);
  });

  it('a full known_files map is a warning, and the process still goes on', () => {
    const { machine, mapped, policy, warnings } = setup(true, { failMarkKnown: true });
    const libssl = machine.file('/usr/lib/libssl.so.3', 11, OPENSSL);
    machine.procs.set(100, { state: 'T', maps: ['/usr/lib/libssl.so.3'] });
    policy.start([]);
    mapped.stopped(100, libssl);
    policy.pollMapped();
    expect(warnings).toEqual(['cannot remember a looked-at file: E2BIG']);
    expect(machine.resumed).toEqual([100]);
  });

  it('resumeAll lets every stopped process go, including stops still in the ring', () => {
    const { machine, mapped, policy } = setup(true);
    const libssl = machine.file('/usr/lib/libssl.so.3', 11, OPENSSL);
    machine.procs.set(100, { state: 'R', maps: [] });
    machine.procs.set(101, { state: 'T', maps: [] });
    policy.start([]);
    mapped.stopped(100, libssl);
    policy.pollMapped();
    mapped.stopped(101, libssl);
    policy.stop();
    policy.resumeAll();
    expect(machine.resumed.sort()).toEqual([100, 101]);
    expect(policy.waitingCount).toBe(0);
  });
});

describe('up front', () => {
  it('attaches to the candidates with OpenSSL at start; says so when there is none', () => {
    const a = setup(false);
    a.machine.file('/usr/lib/libssl.so.3', 11, OPENSSL);
    a.machine.file('/usr/bin/node', 12);
    a.policy.start(['/usr/lib/libssl.so.3', '/usr/bin/node', '/missing']);
    expect(a.attached).toEqual(probesIn('/usr/lib/libssl.so.3'));
    expect(a.warnings).toEqual([]);

    const b = setup(false);
    b.machine.file('/usr/bin/node', 12);
    b.policy.start(['/usr/bin/node']);
    expect(b.attached).toEqual([]);
    expect(b.warnings).toEqual([
      'no OpenSSL library found to attach to: HTTPS traffic will not be recorded until a process maps one',
    ]);
  });

  it('an exec record gets the new program and what it maps looked at; nothing after stop()', () => {
    const { machine, policy, attached } = setup(false);
    machine.file('/usr/bin/myapp', 30, OPENSSL);
    machine.file('/usr/lib/libssl.so.3', 11, OPENSSL);
    machine.procs.set(200, { state: 'S', exe: '/usr/bin/myapp', maps: ['/usr/lib/libssl.so.3'] });
    policy.start([]);
    const exec = encodeRecords([{ tsNs: 1n, tgid: 200, tid: 200, source: 'socket', connId: 0n, type: 'exec' }]);
    const data = encodeRecords([{ tsNs: 1n, tgid: 200, tid: 200, source: 'tls', connId: 1n, type: 'close' }]);
    policy.noticeExec(data);
    expect(attached).toEqual([]);
    policy.noticeExec(exec);
    expect(attached).toEqual([...probesIn('/usr/lib/libssl.so.3'), ...probesIn('/usr/bin/myapp')]);

    const other = setup(false);
    other.machine.file('/usr/bin/myapp', 30, OPENSSL);
    other.machine.procs.set(200, { state: 'S', exe: '/usr/bin/myapp', maps: [] });
    other.policy.start([]);
    other.policy.stop();
    other.policy.noticeExec(exec);
    expect(other.attached).toEqual([]);
  });
});
