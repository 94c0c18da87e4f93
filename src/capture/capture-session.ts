// The capture engine used by `tlsrec record`: loads bpf/capture.bpf.o with the target cgroup as a
// load-time constant, attaches the syscall/exec tracepoints, and composes the three units that do
// the work: the attach policy (which files get the OpenSSL uprobes, attach-policy.ts), the ring
// drainer (ring -> queue -> consumer, ring-drainer.ts) and flow control (the queue, backpressure,
// loss counters, flow-control.ts). The records reach the consumer undecoded, as the kernel wrote
// them (record-layout.ts, decode.ts). Stopping goes through one path, shutDown.

import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { causeText } from '../errors.js';
import type { LossCounters } from '../model/events.js';
import type { Cgroup } from '../native/cgroup.js';
import { FdWaiter } from '../native/fd-waiter.js';
import {
  BPF_TRACE_UPROBE_MULTI,
  BpfObject,
  type BpfLink,
  destroyLinks,
  numPossibleCpus,
  uprobeMultiSupported,
} from '../native/libbpf.js';
import { systemLibssl } from '../native/proc.js';
import { RingBufferReader } from '../native/ringbuf.js';
import { AttachPolicy, type AttachStats, attachOnMapDefault, OPENSSL_PROBES } from './attach-policy.js';
import { type BackpressureStats, FlowControl, sumLossCounters } from './flow-control.js';
import { CAP_CONFIG, CAP_COUNTERS, RING_MAX_ENTRIES } from './record-layout.js';
import { ACTIVE_POLL_MS, RingDrainer } from './ring-drainer.js';

export { DEFAULT_MAX_BACKLOG_BYTES, type BackpressureStats } from './flow-control.js';
export { attachOnMapDefault, OPENSSL_PROBES, type AttachStats } from './attach-policy.js';

export interface CaptureOptions {
  cgroup: Cgroup;
  /** Ring buffer size in bytes (power of two, ≥ 4096). Default DEFAULT_RINGBUF_BYTES. */
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
  /** Ring buffer polling period in ms while records keep coming (default ACTIVE_POLL_MS). */
  pollMs?: number;
  /**
   * Backpressure: when more than this many bytes of records wait for the consumer, the cgroup is
   * frozen (the command pauses) until the backlog is under half of it, MAX_PAUSE_MS at a time.
   * 0 disables: the backlog is then unbounded and a long overload can overflow the ring. Default
   * DEFAULT_MAX_BACKLOG_BYTES.
   */
  maxBacklogBytes?: number;
  /**
   * The consumer fell behind (backlog over a quarter of maxBacklogBytes) or caught up again (under
   * a sixteenth). The recorder yields the CPU to the app while it keeps up and competes as an
   * equal while behind, so that the app slows a little before it has to be paused.
   */
  onBehind?(behind: boolean): void;
}

import { DEFAULT_RINGBUF_BYTES } from './defaults.js';
export { DEFAULT_RINGBUF_BYTES };

/** bpf/capture.bpf.o of this package; the same relative path works from src/capture and dist/capture. */
export function defaultBpfObjectPath(): string {
  return fileURLToPath(new URL('../../bpf/capture.bpf.o', import.meta.url));
}

/** Is the real eBPF capture possible here? A reason when it is not (for tests and preflight). */
export function captureUnsupportedReason(): string | undefined {
  if (process.platform !== 'linux') return 'eBPF capture needs Linux';
  if (process.geteuid?.() !== 0) return 'not root (run as root or grant CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN)';
  if (!existsSync('/sys/kernel/btf/vmlinux')) return 'kernel lacks BTF (/sys/kernel/btf/vmlinux)';
  return undefined;
}

/** The .rodata the BPF programs read as constants (struct cap_config). */
function configBytes(cgroupId: bigint, attachOnMap: boolean): Buffer {
  const cfg = Buffer.alloc(CAP_CONFIG.size);
  cfg.writeBigUInt64LE(cgroupId, CAP_CONFIG.fields.targetCgid.offset);
  cfg.writeUInt8(attachOnMap ? 1 : 0, CAP_CONFIG.fields.attachOnMap.offset);
  return cfg;
}

export class CaptureSession {
  /** Every link (tracepoints and uprobes): detached together, side by side (destroyLinks). */
  private readonly links: BpfLink[] = [];
  private readonly flow: FlowControl;
  private reader: RingBufferReader | undefined;
  private mappedReader: RingBufferReader | undefined;
  private policy: AttachPolicy | undefined;
  private drainer: RingDrainer | undefined;
  private final: LossCounters | undefined;
  private stopping: Promise<LossCounters> | undefined;

  private constructor(
    private readonly obj: BpfObject,
    private readonly opts: CaptureOptions,
    /** Uprobes are attached as uprobe_multi links (else as perf-event links). */
    readonly multi: boolean,
    /** Probes go on files as processes of the command map them (else up front). */
    readonly onMap: boolean,
  ) {
    this.flow = new FlowControl({
      freezer: opts.cgroup,
      maxBacklogBytes: opts.maxBacklogBytes,
      onBehind: opts.onBehind,
      warn: (msg) => this.warn(msg),
    });
  }

  static async start(opts: CaptureOptions): Promise<CaptureSession> {
    const path = opts.bpfObjectPath ?? defaultBpfObjectPath();
    const ringBytes = opts.ringbufBytes ?? DEFAULT_RINGBUF_BYTES;
    // uprobe_multi links detach side by side, where perf-event uprobes detach one at a time
    // (~0.1 s each): stopping a recording does not wait that long a probe (libbpf.ts, destroyLinks).
    const multi = opts.uprobeMulti ?? uprobeMultiSupported();
    const onMap = opts.attachOnMap ?? attachOnMapDefault();
    const obj = BpfObject.openAndLoad(path, (o) => {
      if (multi) {
        for (const p of OPENSSL_PROBES)
          for (const name of p.exit ? [p.enter, p.exit] : [p.enter])
            o.program(name).setExpectedAttachType(BPF_TRACE_UPROBE_MULTI);
      }
      o.setRingbufSize('events', ringBytes);
      o.setRodata(configBytes(opts.cgroup.id, onMap));
    });
    const session = new CaptureSession(obj, opts, multi, onMap);
    try {
      session.begin(ringBytes);
      return session;
    } catch (err) {
      await session.shutDown(false);
      throw err;
    }
  }

  private begin(ringBytes: number): void {
    const { obj, opts } = this;
    this.reader = new RingBufferReader(obj.map('events').fd, ringBytes);
    // tp_btf programs: attached by section name, need no tracefs (not mounted on these hosts) and,
    // unlike classic tracepoints, get typed pt_regs instead of copying arguments through tracefs.
    for (const name of ['sys_exit', 'sched_exec']) this.links.push(obj.program(name).attach());
    if (this.onMap) this.mappedReader = new RingBufferReader(obj.map('mapped').fd, RING_MAX_ENTRIES.mapped);
    const knownFiles = obj.map('known_files');
    const policy = (this.policy = new AttachPolicy({
      onMap: this.onMap,
      mapped: this.mappedReader,
      pids: () => opts.cgroup.pids(),
      warn: (msg) => this.warn(msg),
      target: {
        attachUprobe: (program, binaryPath, offset, retprobe) => {
          const prog = obj.program(program);
          this.links.push(
            this.multi
              ? prog.attachUprobeMulti({ binaryPath, offset, retprobe })
              : prog.attachUprobe({ binaryPath, offset, retprobe }),
          );
        },
        markKnown: (key) => knownFiles.update(key, Buffer.from([1])),
      },
    }));
    policy.start([...systemLibssl(), process.execPath, ...(opts.extraBinaries ?? [])]);
    const waiter = new FdWaiter(
      this.mappedReader ? [obj.map('events').fd, obj.map('mapped').fd] : [obj.map('events').fd],
    );
    this.drainer = new RingDrainer({
      data: this.reader,
      flow: this.flow,
      consume: (records) => opts.onRecords(records),
      onRecord: this.onMap ? undefined : (rec) => policy.noticeExec(rec),
      stoppedProcesses: this.onMap ? policy : undefined,
      waiter,
      activeMs: opts.pollMs ?? ACTIVE_POLL_MS,
      warn: (msg) => this.warn(msg),
    });
    this.drainer.start();
  }

  private warn(msg: string): void {
    this.opts.onWarning?.(msg);
  }

  /** Passes of the drain loop so far: a few a second while nothing happens (tests check it sleeps). */
  get drainPasses(): number {
    return this.drainer?.drainPasses ?? 0;
  }

  attachStats(): AttachStats {
    return this.policy?.stats() ?? { filesAttached: 0, stops: 0, stoppedMs: 0 };
  }

  backpressure(): BackpressureStats {
    return this.flow.backpressure();
  }

  /** Payload bytes of the data records captured so far (TLS plaintext and socket data). */
  capturedBytes(): number {
    return this.flow.capturedBytes();
  }

  /** Loss counters summed over CPUs. */
  counters(): LossCounters {
    if (this.final) return { ...this.final };
    const cpus = numPossibleCpus();
    return sumLossCounters(this.obj.map('counters').lookup(Buffer.alloc(4), cpus * CAP_COUNTERS.size), cpus);
  }

  /** Drains what is left, detaches everything, closes the object. Safe to call twice, even at once. */
  async stop(): Promise<LossCounters> {
    if (this.final) return { ...this.final };
    // Detaching awaits (destroyLinks): a second call meanwhile waits for the first.
    this.stopping ??= this.shutDown(true);
    return { ...(await this.stopping) };
  }

  /**
   * The one way down, from a running session (`drain`: every record reaches the consumer and the
   * loss counters are read) or from a start that failed half way (nothing is delivered).
   */
  private async shutDown(drain: boolean): Promise<LossCounters> {
    await this.drainer?.stop();
    this.policy?.stop();
    this.flow.stop();
    if (drain) this.drainer?.flush();
    // Once the links are gone no program stops a process any more: then resume those still stopped.
    await destroyLinks(this.links.splice(0));
    this.policy?.resumeAll();
    let counters: LossCounters = { ringbufFull: 0, readFault: 0, bytesLost: 0 };
    if (drain) {
      // A program that was running on another CPU when its link went away may still commit a record.
      await sleep(10);
      this.drainer?.flush();
      try {
        counters = this.counters();
      } catch (err) {
        this.warn(`cannot read loss counters: ${causeText(err)}`);
      }
    }
    this.final = counters;
    await this.drainer?.close();
    this.reader?.close();
    this.reader = undefined;
    this.mappedReader?.close();
    this.mappedReader = undefined;
    this.obj.close();
    return { ...counters };
  }
}
