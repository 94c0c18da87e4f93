// The capture engine used by `tlsrec record`: loads bpf/capture.bpf.o with the target cgroup as a
// load-time constant, attaches the syscall/exec tracepoints and OpenSSL uprobes, and delivers the
// captured records, undecoded, in runs from a timer that drains the ring buffer. Draining (copying
// records out) is kept apart from consuming them (spooling them for the writer process): the
// consumer works in time slices and the ring is drained between slices, so a slow consumer queues
// in memory instead of losing data.
//
// Attach on first map: the uprobes go on a file (the system libssl, node, any binary with OpenSSL)
// only once a process of the command maps it. The BPF programs (sys_exit of mmap, sched_exec) stop
// (SIGSTOP) a process of the command that execs or mmaps an executable file not yet looked at and
// report it on the `mapped` ring; this file looks at the file, attaches if it has OpenSSL, marks it
// known, and sends SIGCONT. The process never runs an instruction of the file before its probes are
// in, and a file is looked at once per recording. Up front, the probes in the system libssl trapped
// every libssl user on the machine (wrk 36 -> 75 µs of CPU a request: bench/README.md, session 7).
//
// Polling choice: a 4 ms timer draining everything committed. A blocking epoll_wait in
// runInNewThread would wake a libuv worker per call and still hand results back through the event
// loop; at 4 ms a 64 MiB ring only overflows above ~16 GB/s, and an idle tick costs two 64-bit loads.

import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { causeText } from '../errors.js';
import type { LossCounters } from '../model/events.js';
import { RecordQueue } from './record-queue.js';
import { DEFAULT_MAX_BACKLOG_BYTES, DEFAULT_RINGBUF_BYTES } from '../capture/defaults.js';
import type { Cgroup } from './cgroup.js';
import { CAP_HDR_SIZE, CAP_MAP, dataLength, execTgid, recordLength } from './decode.js';
import { opensslOffsets, type SslFunction } from './elf.js';
import { FdWaiter } from './fd-waiter.js';
import { BPF_TRACE_UPROBE_MULTI, BpfObject, type BpfLink, destroyLinks, numPossibleCpus, uprobeMultiSupported } from './libbpf.js';
import { fileId, processExe, processMappings, processState, systemLibssl } from './proc.js';
import { RingBufferReader } from './ringbuf.js';

export interface CaptureOptions {
  cgroup: Cgroup;
  /** Ring buffer size in bytes (power of two, ≥ 4096). Default 64 MiB. */
  ringbufBytes?: number;
  /**
   * Files the command is likely to run (e.g. the resolved command): looked at for OpenSSL before it
   * starts, so that its first stop is short (attachOnMap), or attached to up front (otherwise).
   */
  extraBinaries?: string[];
  /**
   * Attach the OpenSSL probes to a file only once a process of the command maps it, stopping that
   * process (SIGSTOP) until they are in place. Otherwise the system libssl and this node binary are
   * attached up front, which traps every libssl user on the machine, in scope or not. Default: on,
   * unless TLSREC_ATTACH_ON_MAP=0.
   */
  attachOnMap?: boolean;
  /**
   * Captured records, in order, as the kernel wrote them (header + payload each; decodeRecords
   * reads them). The buffer is the consumer's to keep.
   */
  onRecords(records: Buffer): void;
  onWarning?(msg: string): void;
  /** Path of the compiled BPF object (default: bpf/capture.bpf.o of this package). */
  bpfObjectPath?: string;
  /**
   * Attach uprobes as uprobe_multi links (Linux 6.6+) rather than perf-event links. Default: when
   * the kernel has them (libbpf.ts, uprobeMultiSupported).
   */
  uprobeMulti?: boolean;
  /** Ring buffer polling period in ms while records keep coming (default ACTIVE_POLL_MS, 10). */
  pollMs?: number;
  /**
   * Backpressure: when more than this many bytes of records wait for the consumer, the cgroup is
   * frozen (the command pauses) until the backlog is under half of it, MAX_PAUSE_MS at a time.
   * 0 disables: the backlog is then unbounded and a long overload can overflow the ring. Default
   * 16 MiB: 64 cost ~60 MB more at peak and no throughput (bench/README.md, session 3).
   */
  maxBacklogBytes?: number;
  /**
   * The consumer fell behind (backlog over a quarter of maxBacklogBytes) or caught up again (under
   * a sixteenth). The recorder yields the CPU to the app while it keeps up and competes as an
   * equal while behind, so that the app slows a little before it has to be paused.
   */
  onBehind?(behind: boolean): void;
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

/** How often and how long the command was paused so that tlsrec could keep up. */
export interface BackpressureStats {
  pauses: number;
  pausedMs: number;
  peakBacklogBytes: number;
}

/**
 * Longest single pause (backpressure). Waiting for the backlog to halve took ~300 ms under
 * small-request load (16 MiB of 1 KB exchanges is seconds of work): p99 latency 270 ms. Pauses of
 * at most 20 ms (a few more of them) gave p99 10-25 ms at the same throughput (bench/README.md).
 */
const MAX_PAUSE_MS = 20;

const COUNTERS_SIZE = 24; // struct cap_counters: 3 x u64

/** bpf/capture.bpf.o of this package; the same relative path works from src/native and dist/native. */
export function defaultBpfObjectPath(): string {
  return fileURLToPath(new URL('../../bpf/capture.bpf.o', import.meta.url));
}

/** Which program pairs go on which OpenSSL function (bench/floor/count-probes.mjs attaches its count-only programs to the same). */
export const OPENSSL_PROBES: ReadonlyArray<{ fn: SslFunction; enter: string; exit?: string }> = [
  { fn: 'SSL_read', enter: 'ssl_read_enter', exit: 'ssl_read_exit' },
  { fn: 'SSL_write', enter: 'ssl_write_enter', exit: 'ssl_write_exit' },
  { fn: 'SSL_read_ex', enter: 'ssl_read_ex_enter', exit: 'ssl_read_ex_exit' },
  { fn: 'SSL_write_ex', enter: 'ssl_write_ex_enter', exit: 'ssl_write_ex_exit' },
  { fn: 'SSL_free', enter: 'ssl_free_enter' },
];

/** While a stopped process has not stopped yet (its stop takes effect on its way back to user mode), it is looked at again this often. */
const MAPPED_POLL_MS = 2;
/**
 * The rings are drained this often while records keep coming (batches, not a wake-up a record).
 * 4 ms until session 9: 10 ms took the recorder from 37-40 to 28-30 CPU ticks in 5 s of a bare
 * HTTPS load (220 -> 97 wake-ups/s); at the completeness benchmark's peak rate the 64 MiB ring
 * holds well over 10 ms of traffic. A process stopped at a new file meanwhile waits up to this long
 * (once a file): sleeping on the `mapped` ring instead cost the recorder 3-5 more ticks in 5 s.
 */
const ACTIVE_POLL_MS = 10;
/** With no traffic tlsrec sleeps until a ring wakes it; this long at most, as a safety net. */
const IDLE_WAIT_MS = 1000;
/** A process whose stop has not taken effect (frozen cgroup, a tracer) is looked at anyway after this long. */
const STOP_WAIT_MS = 1000;
const FILE_KEY_SIZE = 16; // struct file_key
const MAPPED_RING_BYTES = 64 << 10; // max_entries of the `mapped` ring in bpf/capture.bpf.c

/** The default of CaptureOptions.attachOnMap. */
export function attachOnMapDefault(): boolean {
  return process.env.TLSREC_ATTACH_ON_MAP !== '0';
}

/** Is the real eBPF capture possible here? A reason when it is not (for tests and preflight). */
export function captureUnsupportedReason(): string | undefined {
  if (process.platform !== 'linux') return 'eBPF capture needs Linux';
  if (process.geteuid?.() !== 0) return 'not root (run as root or grant CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN)';
  if (!existsSync('/sys/kernel/btf/vmlinux')) return 'kernel lacks BTF (/sys/kernel/btf/vmlinux)';
  return undefined;
}

export class CaptureSession {
  private readonly links: BpfLink[] = [];
  /** stat() dev:ino of files looked at: their OpenSSL functions, or undefined when they have none. */
  private readonly inspected = new Map<string, Map<SslFunction, number> | undefined>();
  /** stat() dev:ino of the files the probes are attached to. */
  private readonly attached = new Set<string>();
  /** Processes the BPF programs stopped, by pid: the files (kernel dev:ino) they wait for, since when. */
  private readonly waiting = new Map<number, { keys: Map<string, { dev: number; ino: bigint }>; since: number }>();
  private mappedReader: RingBufferReader | undefined;
  private stops = 0;
  private stoppedMs = 0;
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Sleeps until a ring has a record (see runPollLoop). */
  private waiter: FdWaiter | undefined;
  private pollLoop: Promise<void> | undefined;
  /** Records taken from the data ring so far: tells the poll loop whether traffic is flowing. */
  private recordsDrained = 0;
  private passes = 0;
  private rescanner: NodeJS.Timeout | undefined;
  private reader: RingBufferReader | undefined;
  private stopped = false;
  private final: LossCounters | undefined;
  private stopping: Promise<LossCounters> | undefined;
  /** Records waiting for the consumer. */
  private readonly queue = new RecordQueue();
  /** Payload bytes of the data records drained so far. */
  private dataBytes = 0;
  private pumping = false;
  private pumpScheduled = false;
  private frozenSince: number | undefined;
  private behind = false;
  private pauses = 0;
  private pausedMs = 0;

  private constructor(
    private readonly obj: BpfObject,
    private readonly opts: CaptureOptions,
    /** Uprobes are attached as uprobe_multi links (else as perf-event links). */
    readonly multi: boolean,
    /** Probes go on files as processes of the command map them (else up front). */
    readonly onMap: boolean,
  ) {}

  static async start(opts: CaptureOptions): Promise<CaptureSession> {
    const path = opts.bpfObjectPath ?? defaultBpfObjectPath();
    const ringBytes = opts.ringbufBytes ?? DEFAULT_RINGBUF_BYTES;
    // uprobe_multi links detach side by side, where perf-event uprobes detach one at a time
    // (~0.1 s each): stopping a recording no longer waits that long a probe (libbpf.ts, destroyLinks).
    const multi = opts.uprobeMulti ?? uprobeMultiSupported();
    const onMap = opts.attachOnMap ?? attachOnMapDefault();
    const obj = BpfObject.openAndLoad(path, (o) => {
      if (multi) {
        for (const p of OPENSSL_PROBES) for (const name of p.exit ? [p.enter, p.exit] : [p.enter]) o.program(name).setExpectedAttachType(BPF_TRACE_UPROBE_MULTI);
      }
      o.setRingbufSize('events', ringBytes);
      const cfg = Buffer.alloc(16); // struct cap_config
      cfg.writeBigUInt64LE(opts.cgroup.id, 0);
      cfg.writeUInt8(onMap ? 1 : 0, 8);
      o.setRodata(cfg);
    });
    const session = new CaptureSession(obj, opts, multi, onMap);
    try {
      session.reader = new RingBufferReader(obj.map('events').fd, ringBytes);
      // tp_btf programs: attached by section name, need no tracefs (not mounted on these hosts) and,
      // unlike classic tracepoints, get typed pt_regs instead of copying arguments through tracefs.
      for (const name of ['sys_exit', 'sched_exec']) session.links.push(obj.program(name).attach());
      const candidates = [...systemLibssl(), process.execPath, ...(opts.extraBinaries ?? [])];
      if (onMap) {
        // Looked at now so that a process stopped on one of them waits no longer than the attach.
        for (const file of candidates) session.inspect(file);
        session.markKnown(processMappings('self').filter((m) => !session.inspect(m.path)));
        session.mappedReader = new RingBufferReader(obj.map('mapped').fd, MAPPED_RING_BYTES);
      } else {
        let attachedAny = false;
        for (const file of candidates) attachedAny = session.attachFile(file) || attachedAny;
        if (!attachedAny) session.warn('no OpenSSL library found to attach to: HTTPS traffic will not be recorded until a process maps one');
      }
      session.waiter = new FdWaiter(onMap ? [obj.map('events').fd, obj.map('mapped').fd] : [obj.map('events').fd]);
      session.pollLoop = session.runPollLoop(opts.pollMs ?? ACTIVE_POLL_MS);
      // Libraries can be mapped late (dlopen); exec events trigger scans (up front), this catches the rest.
      session.rescanner = setInterval(() => session.scanCgroup(), 1000);
      return session;
    } catch (err) {
      await session.teardown();
      throw err;
    }
  }

  private warn(msg: string): void {
    this.opts.onWarning?.(msg);
  }

  /** The OpenSSL functions `file` defines (looked up once per file), or undefined. */
  private inspect(file: string, id = fileId(file)): Map<SslFunction, number> | undefined {
    if (!id) return undefined;
    if (!this.inspected.has(id)) this.inspected.set(id, opensslOffsets(file));
    return this.inspected.get(id);
  }

  /** Attach the OpenSSL probes to `file` if it defines them and was not attached before. True if attached now or before. */
  private attachFile(file: string): boolean {
    const id = fileId(file);
    if (!id) return false;
    if (this.attached.has(id)) return true;
    const offsets = this.inspect(file, id);
    if (!offsets) return false;
    this.attached.add(id);
    for (const p of OPENSSL_PROBES) {
      const offset = offsets.get(p.fn);
      if (offset === undefined) continue;
      try {
        const attach = (name: string, retprobe: boolean): BpfLink =>
          this.multi
            ? this.obj.program(name).attachUprobeMulti({ binaryPath: file, offset, retprobe })
            : this.obj.program(name).attachUprobe({ binaryPath: file, offset, retprobe });
        this.links.push(attach(p.enter, false));
        if (p.exit) this.links.push(attach(p.exit, true));
      } catch (err) {
        this.warn(`cannot attach to ${p.fn} in ${file}: ${causeText(err)}`);
      }
    }
    return true;
  }

  /** Tell the BPF programs that these files have been looked at: mapping them stops nobody. */
  private markKnown(files: Iterable<{ dev: number; ino: bigint }>): void {
    const known = this.obj.map('known_files');
    for (const f of files) {
      // ino 0: the kernel could not name the file (bpf_find_vma found the mm busy); such a stop
      // must keep stopping, so that the full scan it triggers keeps running.
      if (f.ino === 0n) continue;
      const key = Buffer.alloc(FILE_KEY_SIZE);
      key.writeBigUInt64LE(f.ino, 0);
      key.writeUInt32LE(f.dev, 8);
      try {
        known.update(key, Buffer.from([1]));
      } catch (err) {
        // The map is full (16,384 files): such files stop their mappers each time, nothing is lost.
        this.warn(`cannot remember a looked-at file: ${causeText(err)}`);
        return;
      }
    }
  }

  /**
   * Drain the rings until the capture stops. While records keep coming, every `activeMs` (a timer:
   * the data ring stays readable under load, so waiting on it would wake tlsrec for every few
   * records); with no traffic, asleep until the kernel wakes it: its default wake-up fires for the
   * first record in a ring tlsrec has emptied, and at once for a process stopped at a mapping.
   */
  private async runPollLoop(activeMs: number): Promise<void> {
    while (!this.stopped) {
      const drained = this.recordsDrained;
      this.passes++;
      try {
        if (this.mappedReader) this.pollMapped();
        this.poll();
      } catch (err) {
        this.warn(`draining the ring buffers failed: ${causeText(err)}`);
      }
      if (this.stopped) break;
      if (this.waiting.size > 0) await sleep(MAPPED_POLL_MS);
      else if (this.recordsDrained !== drained || this.queue.byteLength > 0) await sleep(activeMs);
      else await this.sleepUntilRecords(activeMs);
    }
  }

  /** Asleep on the rings; should epoll ever fail, tlsrec says so once and polls from a timer instead. */
  private async sleepUntilRecords(fallbackMs: number): Promise<void> {
    if (!this.waiter) {
      await sleep(fallbackMs);
      return;
    }
    try {
      await this.waiter.wait(IDLE_WAIT_MS);
    } catch (err) {
      this.warn(`cannot sleep on the ring buffers (${causeText(err)}); polling them every ${fallbackMs} ms instead`);
      const waiter = this.waiter;
      this.waiter = undefined;
      await waiter.close().catch(() => undefined);
    }
  }

  /** Collect the processes the BPF programs stopped, then look at their files and resume them. */
  private pollMapped(): void {
    this.drainMapped();
    if (this.waiting.size > 0) this.serviceWaiting();
  }

  private drainMapped(): void {
    this.mappedReader?.drain((rec) => {
      if (rec.length < CAP_HDR_SIZE || rec[44] !== CAP_MAP) return;
      const pid = rec.readUInt32LE(24);
      const ino = rec.readBigUInt64LE(8);
      const dev = Number(rec.readBigUInt64LE(16));
      let w = this.waiting.get(pid);
      if (!w) {
        this.waiting.set(pid, (w = { keys: new Map(), since: performance.now() }));
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
      const state = processState(pid);
      if (state === undefined || state === 'Z') {
        this.waiting.delete(pid);
        continue;
      }
      if (state !== 'T' && state !== 't' && performance.now() - w.since < STOP_WAIT_MS) continue;
      const mappings = processMappings(pid);
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
      this.resume(pid);
      this.stoppedMs += performance.now() - w.since;
    }
  }

  /** Passes of the poll loop so far: a few a second while nothing happens (tests check it sleeps). */
  get drainPasses(): number {
    return this.passes;
  }

  attachStats(): AttachStats {
    return { filesAttached: this.attached.size, stops: this.stops, stoppedMs: Math.round(this.stoppedMs) };
  }

  private resume(pid: number): void {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // gone meanwhile
    }
  }

  /** Let every process still waiting go on (when stopping): no process of the command is left stopped. */
  private resumeAll(): void {
    this.drainMapped();
    for (const pid of this.waiting.keys()) this.resume(pid);
    this.waiting.clear();
  }

  /** Through /proc/PID/root so that files of processes in another mount namespace resolve too. */
  private viaRoot(pid: number, file: string): string {
    const viaRoot = `/proc/${pid}/root${file}`;
    return existsSync(viaRoot) ? viaRoot : file;
  }

  private scanProcess(pid: number, mappings = processMappings(pid)): void {
    if (this.stopped) return;
    const exe = processExe(pid);
    const files = new Set(mappings.map((m) => m.path));
    if (exe) files.add(exe);
    for (const f of files) this.attachFile(this.viaRoot(pid, f));
  }

  private scanCgroup(): void {
    for (const pid of this.opts.cgroup.pids()) this.scanProcess(pid);
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  /**
   * Copy everything committed out of the ring (cheap: a memcpy a record) into the queue, then let
   * the consumer work through the queue in time slices. The consumer (spooling, which may stall on
   * a slow disk) can be slower than the ring fills under load; draining between its slices keeps
   * the kernel's ring empty so a burst waits in user memory instead of being lost.
   */
  private poll(): void {
    this.drainIntoQueue();
    this.pump();
  }

  private drainIntoQueue(): void {
    if (!this.reader) return;
    this.reader.drain((rec) => {
      const length = recordLength(rec);
      if (length === 0) return;
      this.recordsDrained++;
      this.queue.push(rec, length);
      this.dataBytes += dataLength(rec);
      const pid = this.onMap ? undefined : execTgid(rec);
      if (pid !== undefined && !this.stopped) {
        // At exec only the executable and ld.so are mapped; shared libraries follow within ms.
        this.scanProcess(pid);
        this.later(30, () => this.scanProcess(pid));
        this.later(300, () => this.scanProcess(pid));
      }
    });
    this.applyBackpressure();
  }

  /**
   * Pause the command while the consumer is far behind; resume it once it has caught up half way,
   * or after MAX_PAUSE_MS (then pause again if still needed). While paused the requests in flight
   * wait, so a pause's length is the latency tail.
   */
  private applyBackpressure(): void {
    const max = this.opts.maxBacklogBytes ?? DEFAULT_MAX_BACKLOG_BYTES;
    if (max <= 0) return;
    const backlog = this.queue.byteLength;
    if (!this.behind && backlog > max / 4 && !this.stopped) this.setBehind(true);
    else if (this.behind && (backlog < max / 16 || this.stopped)) this.setBehind(false);
    if (this.frozenSince === undefined && backlog > max && !this.stopped) {
      if (this.opts.cgroup.setFrozen(true)) {
        this.frozenSince = performance.now();
        this.pauses++;
      }
    } else if (this.frozenSince !== undefined && (backlog < max / 2 || this.stopped || performance.now() - this.frozenSince > MAX_PAUSE_MS)) {
      this.thaw();
    }
  }

  private setBehind(behind: boolean): void {
    this.behind = behind;
    try {
      this.opts.onBehind?.(behind);
    } catch (err) {
      this.warn(`priority change failed: ${causeText(err)}`);
    }
  }

  private thaw(): void {
    if (this.frozenSince === undefined) return;
    this.opts.cgroup.setFrozen(false);
    this.pausedMs += performance.now() - this.frozenSince;
    this.frozenSince = undefined;
  }

  backpressure(): BackpressureStats {
    const now = this.frozenSince === undefined ? 0 : performance.now() - this.frozenSince;
    return { pauses: this.pauses, pausedMs: Math.round(this.pausedMs + now), peakBacklogBytes: this.queue.peakBytes };
  }

  /** Payload bytes of the data records captured so far (TLS plaintext and socket data). */
  capturedBytes(): number {
    return this.dataBytes;
  }

  /** Hand queued records to the consumer, a chunk at a time, for up to `budgetMs`, draining the ring in between. */
  private pump(budgetMs = 8): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      const deadline = performance.now() + budgetMs;
      for (let records = this.queue.take(); records; records = this.queue.take()) {
        try {
          this.opts.onRecords(records);
        } catch (err) {
          this.warn(`record consumer failed: ${causeText(err)}`);
        }
        this.drainIntoQueue();
        if (performance.now() > deadline) break;
      }
      this.applyBackpressure();
    } finally {
      this.pumping = false;
    }
    if (this.queue.byteLength > 0 && !this.pumpScheduled) {
      this.pumpScheduled = true;
      setImmediate(() => {
        this.pumpScheduled = false;
        this.poll();
      });
    }
  }

  /** Hand every queued record to the consumer now (used when stopping). */
  private flushQueue(): void {
    this.drainIntoQueue();
    while (this.queue.byteLength > 0) this.pump(Number.POSITIVE_INFINITY);
  }

  /** Loss counters summed over CPUs. */
  counters(): LossCounters {
    if (this.final) return { ...this.final };
    const ncpu = numPossibleCpus();
    const v = this.obj.map('counters').lookup(Buffer.alloc(4), ncpu * COUNTERS_SIZE);
    const out: LossCounters = { ringbufFull: 0, readFault: 0, bytesLost: 0 };
    if (!v) return out;
    for (let c = 0; c < ncpu; c++) {
      out.ringbufFull += Number(v.readBigUInt64LE(c * COUNTERS_SIZE));
      out.readFault += Number(v.readBigUInt64LE(c * COUNTERS_SIZE + 8));
      out.bytesLost += Number(v.readBigUInt64LE(c * COUNTERS_SIZE + 16));
    }
    return out;
  }

  /** Drains what is left, detaches everything, closes the object. Safe to call twice, even at once. */
  async stop(): Promise<LossCounters> {
    if (this.final) return { ...this.final };
    // Detaching awaits (destroyLinks): a second call meanwhile waits for the first.
    this.stopping ??= this.stopOnce();
    return { ...(await this.stopping) };
  }

  private async stopOnce(): Promise<LossCounters> {
    await this.endPollLoop();
    if (this.rescanner) clearInterval(this.rescanner);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.thaw();
    this.flushQueue();
    await destroyLinks(this.links.splice(0));
    this.resumeAll();
    // A program that was running on another CPU when its link went away may still commit a record.
    await sleep(10);
    this.flushQueue();
    let counters: LossCounters = { ringbufFull: 0, readFault: 0, bytesLost: 0 };
    try {
      counters = this.counters();
    } catch (err) {
      this.warn(`cannot read loss counters: ${causeText(err)}`);
    }
    this.final = counters;
    await this.teardown();
    return { ...counters };
  }

  /** Stop the poll loop and wait until it has returned (it may be between two drains). */
  private async endPollLoop(): Promise<void> {
    this.stopped = true;
    this.waiter?.wake();
    await this.pollLoop;
  }

  private async teardown(): Promise<void> {
    await this.endPollLoop();
    this.thaw();
    if (this.rescanner) clearInterval(this.rescanner);
    await destroyLinks(this.links.splice(0));
    this.resumeAll();
    this.reader?.close();
    this.reader = undefined;
    this.mappedReader?.close();
    this.mappedReader = undefined;
    await this.waiter?.close();
    this.waiter = undefined;
    this.obj.close();
  }
}

