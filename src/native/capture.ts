// The capture engine used by `tlsrec record`: loads bpf/capture.bpf.o with the target cgroup as a
// load-time constant, attaches the syscall/exec tracepoints and OpenSSL uprobes, and delivers the
// captured records, undecoded, in runs from a timer that drains the ring buffer. Draining (copying
// records out) is kept apart from consuming them (spooling them for the writer process): the
// consumer works in time slices and the ring is drained between slices, so a slow consumer queues
// in memory instead of losing data.
//
// Polling choice: a 4 ms timer draining everything committed. A blocking epoll_wait in
// runInNewThread would wake a libuv worker per call and still hand results back through the event
// loop; at 4 ms a 64 MiB ring only overflows above ~16 GB/s, and an idle tick costs two 64-bit loads.

import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { causeText } from '../errors.js';
import type { LossCounters } from '../record/events.js';
import { RecordQueue } from './record-queue.js';
import type { Cgroup } from './cgroup.js';
import { dataLength, execTgid, recordLength } from './decode.js';
import { opensslOffsets, type SslFunction } from './elf.js';
import { BPF_TRACE_UPROBE_MULTI, BpfObject, type BpfLink, destroyLinks, numPossibleCpus, uprobeMultiSupported } from './libbpf.js';
import { fileId, processExe, processMappedFiles, systemLibssl } from './proc.js';
import { RingBufferReader } from './ringbuf.js';

export interface CaptureOptions {
  cgroup: Cgroup;
  /** Ring buffer size in bytes (power of two, ≥ 4096). Default 64 MiB. */
  ringbufBytes?: number;
  /** Files to attach to up front besides the system libssl and this node binary (e.g. the resolved command). */
  extraBinaries?: string[];
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
  /** Ring buffer polling period in ms (default 4). */
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

/** How often and how long the command was paused so that tlsrec could keep up. */
export interface BackpressureStats {
  pauses: number;
  pausedMs: number;
  peakBacklogBytes: number;
}

export const DEFAULT_MAX_BACKLOG_BYTES = 16 << 20;

/**
 * Longest single pause (backpressure). Waiting for the backlog to halve took ~300 ms under
 * small-request load (16 MiB of 1 KB exchanges is seconds of work): p99 latency 270 ms. Pauses of
 * at most 20 ms (a few more of them) gave p99 10-25 ms at the same throughput (bench/README.md).
 */
const MAX_PAUSE_MS = 20;

export const DEFAULT_RINGBUF_BYTES = 64 << 20;
const COUNTERS_SIZE = 24; // struct cap_counters: 3 x u64

/** bpf/capture.bpf.o of this package; the same relative path works from src/native and dist/native. */
export function defaultBpfObjectPath(): string {
  return fileURLToPath(new URL('../../bpf/capture.bpf.o', import.meta.url));
}

/** Which program pairs go on which OpenSSL function. */
const PROBES: Array<{ fn: SslFunction; enter: string; exit?: string }> = [
  { fn: 'SSL_read', enter: 'ssl_read_enter', exit: 'ssl_read_exit' },
  { fn: 'SSL_write', enter: 'ssl_write_enter', exit: 'ssl_write_exit' },
  { fn: 'SSL_read_ex', enter: 'ssl_read_ex_enter', exit: 'ssl_read_ex_exit' },
  { fn: 'SSL_write_ex', enter: 'ssl_write_ex_enter', exit: 'ssl_write_ex_exit' },
  { fn: 'SSL_free', enter: 'ssl_free_enter' },
];

/** Is the real eBPF capture possible here? A reason when it is not (for tests and preflight). */
export function captureUnsupportedReason(): string | undefined {
  if (process.platform !== 'linux') return 'eBPF capture needs Linux';
  if (process.geteuid?.() !== 0) return 'not root (run as root or grant CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN)';
  if (!existsSync('/sys/kernel/btf/vmlinux')) return 'kernel lacks BTF (/sys/kernel/btf/vmlinux)';
  return undefined;
}

export class CaptureSession {
  private readonly links: BpfLink[] = [];
  /** dev:ino of files already looked at (attached, or without OpenSSL). */
  private readonly seenFiles = new Map<string, boolean>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private poller: NodeJS.Timeout | undefined;
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
  ) {}

  static async start(opts: CaptureOptions): Promise<CaptureSession> {
    const path = opts.bpfObjectPath ?? defaultBpfObjectPath();
    const ringBytes = opts.ringbufBytes ?? DEFAULT_RINGBUF_BYTES;
    // uprobe_multi links detach side by side, where perf-event uprobes detach one at a time
    // (~0.1 s each): stopping a recording no longer waits that long a probe (libbpf.ts, destroyLinks).
    const multi = opts.uprobeMulti ?? uprobeMultiSupported();
    const obj = BpfObject.openAndLoad(path, (o) => {
      if (multi) {
        for (const p of PROBES) for (const name of p.exit ? [p.enter, p.exit] : [p.enter]) o.program(name).setExpectedAttachType(BPF_TRACE_UPROBE_MULTI);
      }
      o.setRingbufSize('events', ringBytes);
      const cfg = Buffer.alloc(8); // struct cap_config
      cfg.writeBigUInt64LE(opts.cgroup.id, 0);
      o.setRodata(cfg);
    });
    const session = new CaptureSession(obj, opts, multi);
    try {
      session.reader = new RingBufferReader(obj.map('events').fd, ringBytes);
      // tp_btf programs: attached by section name, need no tracefs (not mounted on these hosts) and,
      // unlike classic tracepoints, get typed pt_regs instead of copying arguments through tracefs.
      for (const name of ['sys_enter', 'sys_exit', 'sched_exec']) session.links.push(obj.program(name).attach());
      const upFront = [...systemLibssl(), process.execPath, ...(opts.extraBinaries ?? [])];
      let attachedAny = false;
      for (const file of upFront) attachedAny = session.attachFile(file) || attachedAny;
      if (!attachedAny) session.warn('no OpenSSL library found to attach to: HTTPS traffic will not be recorded until a process maps one');
      session.poller = setInterval(() => session.poll(), opts.pollMs ?? 4);
      // Libraries can be mapped late (dlopen); exec events trigger scans, this catches the rest.
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

  /** Attach the OpenSSL probes to `file` if it defines them and was not seen before. True if attached now or before. */
  private attachFile(file: string): boolean {
    const id = fileId(file);
    if (!id) return false;
    const known = this.seenFiles.get(id);
    if (known !== undefined) return known;
    const offsets = opensslOffsets(file);
    if (!offsets) {
      this.seenFiles.set(id, false);
      return false;
    }
    this.seenFiles.set(id, true);
    for (const p of PROBES) {
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

  private scanProcess(pid: number): void {
    if (this.stopped) return;
    const exe = processExe(pid);
    const files = new Set(processMappedFiles(pid));
    if (exe) files.add(exe);
    for (const f of files) {
      // Through /proc/PID/root so that files of processes in another mount namespace resolve too.
      const viaRoot = `/proc/${pid}/root${f}`;
      this.attachFile(existsSync(viaRoot) ? viaRoot : f);
    }
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
      this.queue.push(rec, length);
      this.dataBytes += dataLength(rec);
      const pid = execTgid(rec);
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
    this.stopped = true;
    if (this.poller) clearInterval(this.poller);
    if (this.rescanner) clearInterval(this.rescanner);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.thaw();
    this.flushQueue();
    await destroyLinks(this.links.splice(0));
    // A program that was running on another CPU when its link went away may still commit a record.
    await new Promise((r) => setTimeout(r, 10));
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

  private async teardown(): Promise<void> {
    this.stopped = true;
    this.thaw();
    if (this.poller) clearInterval(this.poller);
    if (this.rescanner) clearInterval(this.rescanner);
    await destroyLinks(this.links.splice(0));
    this.reader?.close();
    this.reader = undefined;
    this.obj.close();
  }
}

