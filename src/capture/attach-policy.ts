// The attach policy: which files get the OpenSSL uprobes, and when. Node links OpenSSL statically
// (the `node` binary exports SSL_*); curl, Python, Ruby map libssl.so.3, some only once they import
// ssl. So every executable file a process of the command maps is looked at (ELF symbols, elf.ts),
// once per file (device+inode), and the probes go on those that define the functions.
//
// Attach on first map (the default): the BPF programs (sys_exit of mmap, sched_exec) stop (SIGSTOP)
// a process of the command that maps an executable file not yet looked at and report it on the
// `mapped` ring; the policy looks at the file, attaches if it has OpenSSL, marks it known in the
// `known_files` map, and sends SIGCONT. The process runs no instruction of the file before its
// probes are in. Up front (TLSREC_ATTACH_ON_MAP=0): the system libssl and this node binary are
// attached at start, which traps every libssl user on the machine, in scope or not (a libssl-heavy
// load generator then pays for the probes too: bench/README.md); exec records and a periodic scan
// of the cgroup find the rest.

import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { causeText } from '../errors.js';
import { opensslOffsets, type SslFunction } from '../native/elf.js';
import { type ExecutableMapping, fileId, processExe, processMappings, processState } from '../native/proc.js';
import { execTgid } from './decode.js';
import { CAP_EVENT, CAP_HDR_SIZE, FILE_KEY, RecordType } from './record-layout.js';
import type { RecordSource, StoppedProcesses } from './ring-drainer.js';

/** Which program pairs go on which OpenSSL function (bench/floor/count-probes.mjs attaches its count-only programs to the same). */
export const OPENSSL_PROBES: ReadonlyArray<{ fn: SslFunction; enter: string; exit?: string }> = [
  { fn: 'SSL_read', enter: 'ssl_read_enter', exit: 'ssl_read_exit' },
  { fn: 'SSL_write', enter: 'ssl_write_enter', exit: 'ssl_write_exit' },
  { fn: 'SSL_read_ex', enter: 'ssl_read_ex_enter', exit: 'ssl_read_ex_exit' },
  { fn: 'SSL_write_ex', enter: 'ssl_write_ex_enter', exit: 'ssl_write_ex_exit' },
  { fn: 'SSL_free', enter: 'ssl_free_enter' },
];

/** A process whose stop has not taken effect (frozen cgroup, a tracer) is looked at anyway after this long. */
export const STOP_WAIT_MS = 1000;
/** Libraries can be mapped late (dlopen): every process in scope is scanned this often as well. */
export const RESCAN_MS = 1000;
/** Up front: after an exec only the executable and ld.so are mapped; shared libraries follow within ms. */
const EXEC_RESCAN_MS = [30, 300];

/** The default of attachOnMap: on, unless TLSREC_ATTACH_ON_MAP=0. */
export function attachOnMapDefault(): boolean {
  return process.env.TLSREC_ATTACH_ON_MAP !== '0';
}

/** What attaching on first map cost the command: how often a process waited, and for how long in all. */
export interface AttachStats {
  /** Files the OpenSSL probes are attached to. */
  filesAttached: number;
  /** Processes stopped until a file they mapped had been looked at. */
  stops: number;
  /** Time from those stops' records to the processes' resumption, summed. */
  stoppedMs: number;
}

/** Where the probes go: the loaded BPF object. */
export interface ProbeTarget {
  /** Attach BPF program `program` at file offset `offset` of `file` (a uretprobe if `retprobe`). Throws if the kernel refuses. */
  attachUprobe(program: string, file: string, offset: number, retprobe: boolean): void;
  /** Put `key` (struct file_key) into the `known_files` map. Throws when the map is full. */
  markKnown(key: Buffer): void;
}

/** The processes and files the policy looks at (/proc, stat, ELF, signals). */
export interface ProcessSystem {
  fileId(path: string): string | undefined;
  opensslOffsets(path: string): Map<SslFunction, number> | undefined;
  processState(pid: number): string | undefined;
  processMappings(pid: number | 'self'): ExecutableMapping[];
  processExe(pid: number): string | undefined;
  exists(path: string): boolean;
  /** SIGCONT; a process gone meanwhile is no error. */
  resume(pid: number): void;
  /** Milliseconds, monotonic. */
  now(): number;
}

export const LOCAL_SYSTEM: ProcessSystem = {
  fileId,
  opensslOffsets,
  processState,
  processMappings,
  processExe,
  exists: existsSync,
  resume(pid) {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // gone meanwhile
    }
  },
  now: () => performance.now(),
};

export interface AttachPolicyOptions {
  /** Attach when a process of the command maps a file (else up front). */
  onMap: boolean;
  target: ProbeTarget;
  /** The `mapped` ring (attach on map only). */
  mapped?: RecordSource;
  /** The processes in scope (the command's cgroup). */
  pids(): number[];
  warn(msg: string): void;
  system?: ProcessSystem;
}

/** A file as the kernel names it (super_block s_dev encoding, not stat()'s). */
interface KernelFile {
  dev: number;
  ino: bigint;
}

const EV = CAP_EVENT.fields;

export class AttachPolicy implements StoppedProcesses {
  private readonly sys: ProcessSystem;
  /** stat() dev:ino of files looked at: their OpenSSL functions, or undefined when they have none. */
  private readonly inspected = new Map<string, Map<SslFunction, number> | undefined>();
  /** stat() dev:ino of the files the probes are attached to. */
  private readonly attached = new Set<string>();
  /** Processes the BPF programs stopped, by pid: the files (kernel dev:ino) they wait for, since when. */
  private readonly waiting = new Map<number, { keys: Map<string, KernelFile>; since: number }>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private rescanner: NodeJS.Timeout | undefined;
  private stops = 0;
  private stoppedMs = 0;
  private stopped = false;

  constructor(private readonly opts: AttachPolicyOptions) {
    this.sys = opts.system ?? LOCAL_SYSTEM;
  }

  /**
   * Begin with `candidates`, files the command is likely to map (the system libssl, node, the
   * command's executable): attach on map looks at them now, so that a process stopped on one waits
   * no longer than the attach, and marks what this process maps as known; up front attaches to them.
   */
  start(candidates: readonly string[]): void {
    if (this.opts.onMap) {
      for (const file of candidates) this.inspect(file);
      this.markKnown(this.sys.processMappings('self').filter((m) => !this.inspect(m.path)));
    } else {
      let attachedAny = false;
      for (const file of candidates) attachedAny = this.attachFile(file) || attachedAny;
      if (!attachedAny)
        this.opts.warn(
          'no OpenSSL library found to attach to: HTTPS traffic will not be recorded until a process maps one',
        );
    }
    this.rescanner = setInterval(() => this.scanCgroup(), RESCAN_MS);
  }

  /** The OpenSSL functions `file` defines (looked up once per file), or undefined. */
  private inspect(file: string, id = this.sys.fileId(file)): Map<SslFunction, number> | undefined {
    if (!id) return undefined;
    if (!this.inspected.has(id)) this.inspected.set(id, this.sys.opensslOffsets(file));
    return this.inspected.get(id);
  }

  /** Attach the OpenSSL probes to `file` if it defines them and was not attached before. True if attached now or before. */
  private attachFile(file: string): boolean {
    const id = this.sys.fileId(file);
    if (!id) return false;
    if (this.attached.has(id)) return true;
    const offsets = this.inspect(file, id);
    if (!offsets) return false;
    this.attached.add(id);
    for (const p of OPENSSL_PROBES) {
      const offset = offsets.get(p.fn);
      if (offset === undefined) continue;
      try {
        this.opts.target.attachUprobe(p.enter, file, offset, false);
        if (p.exit) this.opts.target.attachUprobe(p.exit, file, offset, true);
      } catch (err) {
        this.opts.warn(`cannot attach to ${p.fn} in ${file}: ${causeText(err)}`);
      }
    }
    return true;
  }

  /** Tell the BPF programs that these files have been looked at: mapping them stops nobody. */
  private markKnown(files: Iterable<KernelFile>): void {
    for (const f of files) {
      // ino 0: the kernel could not name the file (bpf_find_vma found the mm busy); such a stop
      // must keep stopping, so that the full scan it triggers keeps running.
      if (f.ino === 0n) continue;
      const key = Buffer.alloc(FILE_KEY.size);
      key.writeBigUInt64LE(f.ino, FILE_KEY.fields.ino.offset);
      key.writeUInt32LE(f.dev, FILE_KEY.fields.dev.offset);
      try {
        this.opts.target.markKnown(key);
      } catch (err) {
        // The map is full: such files stop their mappers each time, nothing is lost.
        this.opts.warn(`cannot remember a looked-at file: ${causeText(err)}`);
        return;
      }
    }
  }

  /** Processes stopped and not yet resumed. */
  get waitingCount(): number {
    return this.waiting.size;
  }

  /** Collect the processes the BPF programs stopped, then look at their files and resume them. */
  pollMapped(): void {
    this.drainMapped();
    if (this.waiting.size > 0) this.serviceWaiting();
  }

  /** CAP_MAP records: tgid = the stopped process, conn = the file's inode, pos = its device. */
  private drainMapped(): void {
    this.opts.mapped?.drain((rec) => {
      if (rec.length < CAP_HDR_SIZE || rec[EV.type.offset] !== RecordType.CAP_MAP) return;
      const pid = rec.readUInt32LE(EV.tgid.offset);
      const ino = rec.readBigUInt64LE(EV.conn.offset);
      const dev = Number(rec.readBigUInt64LE(EV.pos.offset));
      let w = this.waiting.get(pid);
      if (!w) {
        this.waiting.set(pid, (w = { keys: new Map(), since: this.sys.now() }));
        this.stops++;
      }
      w.keys.set(`${dev}:${ino}`, { dev, ino });
    });
  }

  /**
   * A stopped process has finished the mmap that stopped it, so its maps list the file: attach to
   * it (found by the kernel's dev:ino; a file the maps name differently, as on overlayfs, is found
   * by attaching to everything the process maps), remember it as known, and let the process go on.
   */
  private serviceWaiting(): void {
    for (const [pid, w] of this.waiting) {
      const state = this.sys.processState(pid);
      if (state === undefined || state === 'Z') {
        this.waiting.delete(pid);
        continue;
      }
      if (state !== 'T' && state !== 't' && this.sys.now() - w.since < STOP_WAIT_MS) continue;
      const mappings = this.sys.processMappings(pid);
      let unnamed = false;
      for (const key of w.keys.values()) {
        const m = mappings.find((x) => x.dev === key.dev && x.ino === key.ino);
        if (m) this.attachFile(this.viaRoot(pid, m.path));
        else unnamed = true;
      }
      if (unnamed) this.scanProcess(pid, mappings);
      this.markKnown(w.keys.values());
      this.waiting.delete(pid);
      // Another thread of the process may have been stopped mapping another file meanwhile: its
      // SIGSTOP is already pending, and SIGCONT would cancel it; look at that file first.
      this.drainMapped();
      if (this.waiting.has(pid)) continue;
      this.sys.resume(pid);
      this.stoppedMs += this.sys.now() - w.since;
    }
  }

  /** Up front: an exec record's process gets its files looked at now and twice more as its libraries load. */
  noticeExec(rec: Buffer): void {
    const pid = execTgid(rec);
    if (pid === undefined || this.stopped) return;
    this.scanProcess(pid);
    for (const ms of EXEC_RESCAN_MS) this.later(ms, () => this.scanProcess(pid));
  }

  /** Let every process still waiting go on: no process of the command is left stopped. */
  resumeAll(): void {
    this.drainMapped();
    for (const pid of this.waiting.keys()) this.sys.resume(pid);
    this.waiting.clear();
  }

  /** No more scans (timers cleared). Processes still stopped wait for resumeAll, once no probe can stop them again. */
  stop(): void {
    this.stopped = true;
    if (this.rescanner) clearInterval(this.rescanner);
    this.rescanner = undefined;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  stats(): AttachStats {
    return { filesAttached: this.attached.size, stops: this.stops, stoppedMs: Math.round(this.stoppedMs) };
  }

  /** Through /proc/PID/root so that files of processes in another mount namespace resolve too. */
  private viaRoot(pid: number, file: string): string {
    const viaRoot = `/proc/${pid}/root${file}`;
    return this.sys.exists(viaRoot) ? viaRoot : file;
  }

  private scanProcess(pid: number, mappings = this.sys.processMappings(pid)): void {
    if (this.stopped) return;
    const exe = this.sys.processExe(pid);
    const files = new Set(mappings.map((m) => m.path));
    if (exe) files.add(exe);
    for (const f of files) this.attachFile(this.viaRoot(pid, f));
  }

  private scanCgroup(): void {
    for (const pid of this.opts.pids()) this.scanProcess(pid);
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }
}
