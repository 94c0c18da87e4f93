// A small wrapper over libbpf 1.x (libbpf.so.1) through ffi-rs: open an object file, size maps and
// set `const volatile` settings before load, load with the verifier log captured, attach programs,
// and read/write maps by fd. Used by the capture engine and by the replay redirect programs.

import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { isNullPointer } from 'ffi-rs';
import { EnvironmentError } from '../errors.js';
import { symbolOffsetsSync } from './elf.js';
import {
  DataType,
  type JsExternal,
  allocMem,
  call,
  callErrno,
  callInThread,
  ensureLibbpf,
  ensureLibc,
  freeMem,
  viewAt,
} from './ffi.js';

export const LIB = 'libbpf';
/** Kernel log buffer for load failures (verifier logs of rejected programs can be long). */
const LOG_BUF_SIZE = 4 << 20;

const PRIV_HINT = 'run as root or grant CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN';

export function errnoName(code: number): string {
  const names: Record<number, string> = {
    1: 'EPERM',
    2: 'ENOENT',
    7: 'E2BIG',
    9: 'EBADF',
    12: 'ENOMEM',
    13: 'EACCES',
    16: 'EBUSY',
    17: 'EEXIST',
    22: 'EINVAL',
    28: 'ENOSPC',
    95: 'EOPNOTSUPP',
    524: 'ENOTSUPP',
  };
  return names[code] ?? `errno ${code}`;
}

export function hintFor(code: number, fallback: string): string {
  if (code === 1 || code === 13) return PRIV_HINT;
  return fallback;
}

/** Keep the last lines of a verifier log that say why it failed. */
export function summariseVerifierLog(log: string, maxLines = 12): string {
  const lines = log.split('\n').filter((l) => l.trim() !== '');
  const start = lines.findIndex((l) => /^-- BEGIN PROG LOAD LOG --/.test(l));
  const body = start >= 0 ? lines.slice(start + 1) : lines;
  const end = body.findIndex((l) => /^-- END PROG LOAD LOG --/.test(l));
  const relevant = (end >= 0 ? body.slice(0, end) : body).filter(
    (l) => !/^(processed|verification time|stack depth)/.test(l),
  );
  return relevant.slice(-maxLines).join('\n');
}

export interface UprobeOptions {
  binaryPath: string;
  /** File offset of the probed instruction. Either this or funcName (resolved by tlsrec's ELF reader). */
  offset?: number;
  funcName?: string;
  retprobe: boolean;
  /** -1 (default): every process; scope is filtered in BPF. */
  pid?: number;
}

/** errno of a load interrupted by a signal. */
const EAGAIN = 11;

/** An attachment of a program; detaching it is closing it. */
export interface BpfLink {
  readonly description: string;
  /** Detach. Safe to call twice. */
  destroy(): void;
  /** Detach on a thread of its own (see destroyLinks). Safe to call twice. */
  destroyInThread(): Promise<void>;
}

/** A link libbpf made (struct bpf_link *). */
class LibbpfLink implements BpfLink {
  private ptr: JsExternal | undefined;
  constructor(
    ptr: JsExternal,
    readonly description: string,
  ) {
    this.ptr = ptr;
  }
  destroy(): void {
    if (!this.ptr) return;
    call(LIB, 'bpf_link__destroy', DataType.I32, [DataType.External], [this.ptr]);
    this.ptr = undefined;
  }
  async destroyInThread(): Promise<void> {
    if (!this.ptr) return;
    const ptr = this.ptr;
    this.ptr = undefined;
    await callInThread(LIB, 'bpf_link__destroy', DataType.I32, [DataType.External], [ptr]);
  }
}

/** A link we made with the bpf() syscall: a file descriptor. */
class FdLink implements BpfLink {
  constructor(
    private fd: number,
    readonly description: string,
  ) {}
  destroy(): void {
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
  }
  async destroyInThread(): Promise<void> {
    if (this.fd < 0) return;
    const fd = this.fd;
    this.fd = -1;
    await callInThread('libc', 'close', DataType.I32, [DataType.I32], [fd]);
  }
}

/**
 * Detach links side by side. Closing a uprobe link waits for RCU grace periods: a perf-event uprobe
 * link takes ~0.1 s and the kernel serialises them even when closed from several threads (18 links
 * ~1.9 s); uprobe_multi links take ~0.05 s each one after another and ~0.08 s for 18 closed at once.
 */
export async function destroyLinks(links: BpfLink[]): Promise<void> {
  await Promise.all(links.map((l) => l.destroyInThread()));
}

function linkOrThrow(
  r: { value: unknown; errnoCode: number; errnoMessage: string },
  what: string,
  stage: string,
  hint: string,
): BpfLink {
  const ptr = r.value as JsExternal;
  if (isNullPointer(ptr)) {
    throw new EnvironmentError(`${what} failed: ${r.errnoMessage} (${errnoName(r.errnoCode)})`, {
      code: 'TLSREC_E_ATTACH',
      stage,
      hint: hintFor(r.errnoCode, hint),
    });
  }
  return new LibbpfLink(ptr, what);
}

/** enum bpf_attach_type BPF_TRACE_UPROBE_MULTI (Linux 6.6+). */
export const BPF_TRACE_UPROBE_MULTI = 48;
const BPF_LINK_CREATE = 28;
const SYS_BPF: Partial<Record<string, number>> = { x64: 321, arm64: 280 };
const BPF_F_UPROBE_MULTI_RETURN = 1;

/**
 * Can uprobes be attached as uprobe_multi links (Linux 6.6+)? Read from the kernel's BTF, which
 * names the link's struct when the kernel has it; TLSREC_UPROBE_MULTI=0 says no regardless.
 */
export function uprobeMultiSupported(btfPath = '/sys/kernel/btf/vmlinux'): boolean {
  if (process.env.TLSREC_UPROBE_MULTI === '0' || SYS_BPF[process.arch] === undefined) return false;
  try {
    return readFileSync(btfPath).includes('\0bpf_uprobe_multi_link\0', 0, 'latin1');
  } catch {
    return false;
  }
}

export class BpfProgram {
  constructor(
    private readonly ptr: JsExternal,
    readonly name: string,
  ) {}

  attachUprobe(opts: UprobeOptions): BpfLink {
    let offset = opts.offset;
    if (offset === undefined) {
      if (!opts.funcName) throw new Error('attachUprobe needs offset or funcName');
      // libbpf 1.1 can resolve func_name itself, but only through bpf_uprobe_opts (a struct holding a
      // char*); our own ELF reader gives the same file offset without building C strings by hand.
      const found = symbolOffsetsSync(opts.binaryPath, [opts.funcName]).get(opts.funcName);
      if (found === undefined) {
        throw new EnvironmentError(`${opts.binaryPath} does not define ${opts.funcName}`, {
          code: 'TLSREC_E_ATTACH',
          stage: 'attach uprobe',
          hint: 'check the binary path',
        });
      }
      offset = found;
    }
    const what = `${opts.retprobe ? 'uretprobe' : 'uprobe'} ${this.name} on ${opts.binaryPath}+0x${offset.toString(16)}`;
    const r = callErrno(
      LIB,
      'bpf_program__attach_uprobe',
      DataType.External,
      [DataType.External, DataType.Boolean, DataType.I32, DataType.String, DataType.I64],
      [this.ptr, opts.retprobe, opts.pid ?? -1, opts.binaryPath, offset],
    );
    return linkOrThrow(
      r,
      what,
      'attach uprobe',
      'the kernel needs CONFIG_UPROBE_EVENTS; check that the file exists and is an ELF executable or library',
    );
  }

  /**
   * A uprobe as a uprobe_multi link (Linux 6.6+; the program must have been loaded with expected
   * attach type BPF_TRACE_UPROBE_MULTI). libbpf 1.1 predates it, so the link is made with bpf()
   * directly. Unlike perf-event uprobes, such links detach side by side (see destroyLinks).
   */
  attachUprobeMulti(opts: { binaryPath: string; offset: number; retprobe: boolean }): BpfLink {
    ensureLibc();
    const what = `${opts.retprobe ? 'uretprobe' : 'uprobe'} (multi) ${this.name} on ${opts.binaryPath}+0x${opts.offset.toString(16)}`;
    const progFd = call(LIB, 'bpf_program__fd', DataType.I32, [DataType.External], [this.ptr]) as number;
    // The kernel copies the path and the offsets while it makes the link: C memory for the call only.
    const path = Buffer.from(`${opts.binaryPath}\0`);
    const pathAddr = allocMem(path.length);
    const offsetsAddr = allocMem(8);
    try {
      path.copy(viewAt(pathAddr, path.length));
      viewAt(offsetsAddr, 8).writeBigUInt64LE(BigInt(opts.offset));
      // union bpf_attr, link_create: prog_fd@0 target_fd@4 attach_type@8 flags@12, then
      // uprobe_multi: path@16 offsets@24 ref_ctr_offsets@32 cookies@40 cnt@48 flags@52 pid@56.
      const attr = Buffer.alloc(64);
      attr.writeUInt32LE(progFd, 0);
      attr.writeUInt32LE(BPF_TRACE_UPROBE_MULTI, 8);
      attr.writeBigUInt64LE(BigInt(pathAddr), 16);
      attr.writeBigUInt64LE(BigInt(offsetsAddr), 24);
      attr.writeUInt32LE(1, 48);
      attr.writeUInt32LE(opts.retprobe ? BPF_F_UPROBE_MULTI_RETURN : 0, 52);
      const r = callErrno(
        'libc',
        'syscall',
        DataType.I64,
        [DataType.I64, DataType.I64, DataType.U8Array, DataType.I64],
        [SYS_BPF[process.arch], BPF_LINK_CREATE, attr, attr.length],
      );
      const fd = r.value as number;
      if (fd < 0) {
        throw new EnvironmentError(`${what} failed: ${r.errnoMessage} (${errnoName(r.errnoCode)})`, {
          code: 'TLSREC_E_ATTACH',
          stage: 'attach uprobe',
          hint: hintFor(
            r.errnoCode,
            'set TLSREC_UPROBE_MULTI=0 to attach perf-event uprobes instead; check that the file exists and is an ELF executable or library',
          ),
        });
      }
      return new FdLink(fd, what);
    } finally {
      freeMem(pathAddr);
      freeMem(offsetsAddr);
    }
  }

  /** Before load: the attach type the kernel checks the program against (e.g. BPF_TRACE_UPROBE_MULTI). */
  setExpectedAttachType(type: number): void {
    const rc = call(
      LIB,
      'bpf_program__set_expected_attach_type',
      DataType.I32,
      [DataType.External, DataType.I32],
      [this.ptr, type],
    ) as number;
    if (rc < 0) throw new Error(`cannot set the expected attach type of ${this.name}: ${errnoName(-rc)}`);
  }

  /** Raw tracepoint by name (e.g. "sys_enter"); needs no tracefs. */
  attachRawTracepoint(name: string): BpfLink {
    const r = callErrno(
      LIB,
      'bpf_program__attach_raw_tracepoint',
      DataType.External,
      [DataType.External, DataType.String],
      [this.ptr, name],
    );
    return linkOrThrow(
      r,
      `raw tracepoint ${this.name} on ${name}`,
      'attach tracepoint',
      'the kernel needs CONFIG_BPF_EVENTS',
    );
  }

  /** Classic tracepoint (needs tracefs mounted at /sys/kernel/tracing). */
  attachTracepoint(category: string, name: string): BpfLink {
    const r = callErrno(
      LIB,
      'bpf_program__attach_tracepoint',
      DataType.External,
      [DataType.External, DataType.String, DataType.String],
      [this.ptr, category, name],
    );
    return linkOrThrow(
      r,
      `tracepoint ${this.name} on ${category}/${name}`,
      'attach tracepoint',
      'mount tracefs: `mount -t tracefs nodev /sys/kernel/tracing`',
    );
  }

  /** Attach as the section name says (tp_btf/…, raw_tp/…, fentry/…). */
  attach(): BpfLink {
    const r = callErrno(LIB, 'bpf_program__attach', DataType.External, [DataType.External], [this.ptr]);
    return linkOrThrow(
      r,
      `program ${this.name}`,
      'attach program',
      'the kernel needs BTF (/sys/kernel/btf/vmlinux) and BPF tracing support',
    );
  }

  /** cgroup programs (cgroup/connect4, cgroup/sendmsg4, …) on a cgroup v2 directory. */
  attachCgroup(cgroupPath: string): BpfLink {
    let fd: number;
    try {
      fd = openSync(cgroupPath, 'r');
    } catch (err) {
      throw new EnvironmentError(`cannot open cgroup ${cgroupPath}: ${(err as Error).message}`, {
        code: 'TLSREC_E_ATTACH',
        stage: 'attach cgroup program',
        hint: 'check that the cgroup exists (cgroup v2)',
        cause: err,
      });
    }
    try {
      const r = callErrno(
        LIB,
        'bpf_program__attach_cgroup',
        DataType.External,
        [DataType.External, DataType.I32],
        [this.ptr, fd],
      );
      return linkOrThrow(
        r,
        `cgroup program ${this.name} on ${cgroupPath}`,
        'attach cgroup program',
        'the kernel needs CONFIG_CGROUP_BPF and cgroup v2',
      );
    } finally {
      closeSync(fd); // the link holds its own reference to the cgroup
    }
  }

  /** Do not load this program (call before load). */
  setAutoload(autoload: boolean): void {
    call(LIB, 'bpf_program__set_autoload', DataType.I32, [DataType.External, DataType.Boolean], [this.ptr, autoload]);
  }
}

export class BpfMap {
  constructor(
    private readonly ptr: JsExternal,
    readonly name: string,
  ) {}

  get fd(): number {
    return call(LIB, 'bpf_map__fd', DataType.I32, [DataType.External], [this.ptr]) as number;
  }

  /** Before load only. */
  setMaxEntries(n: number): void {
    const rc = call(
      LIB,
      'bpf_map__set_max_entries',
      DataType.I32,
      [DataType.External, DataType.U32],
      [this.ptr, n],
    ) as number;
    if (rc < 0)
      throw new EnvironmentError(`cannot set max_entries of map ${this.name} to ${n}: ${errnoName(-rc)}`, {
        code: 'TLSREC_E_BPF_MAP',
        stage: 'configure bpf map',
        hint: 'set it before load(); ring buffers need a power of two multiple of the page size',
      });
  }

  /** Before load only: initial contents (used for .rodata / .data / .bss). */
  setInitialValue(value: Buffer): void {
    const rc = call(
      LIB,
      'bpf_map__set_initial_value',
      DataType.I32,
      [DataType.External, DataType.U8Array, DataType.I64],
      [this.ptr, value, value.length],
    ) as number;
    if (rc < 0)
      throw new EnvironmentError(`cannot set the initial value of map ${this.name}: ${errnoName(-rc)}`, {
        code: 'TLSREC_E_BPF_MAP',
        stage: 'configure bpf map',
        hint: 'set it before load(), with exactly the size of the section',
      });
  }

  /** Size of the initial value (the section size for .rodata/.data/.bss maps). */
  initialValueSize(): number {
    const sizeOut = Buffer.alloc(8);
    call(LIB, 'bpf_map__initial_value', DataType.I64, [DataType.External, DataType.U8Array], [this.ptr, sizeOut]);
    return Number(sizeOut.readBigUInt64LE(0));
  }

  update(key: Buffer, value: Buffer, flags = 0): void {
    const r = callErrno(
      LIB,
      'bpf_map_update_elem',
      DataType.I32,
      [DataType.I32, DataType.U8Array, DataType.U8Array, DataType.I64],
      [this.fd, key, value, flags],
    );
    if ((r.value as number) < 0)
      throw new EnvironmentError(`update of map ${this.name} failed: ${r.errnoMessage}`, {
        code: 'TLSREC_E_BPF_MAP',
        stage: 'update bpf map',
        hint: hintFor(r.errnoCode, 'check key and value sizes'),
      });
  }

  /** undefined when the key is absent. For per-CPU maps valueSize is nCPUs * round_up(size, 8). */
  lookup(key: Buffer, valueSize: number): Buffer | undefined {
    const out = Buffer.alloc(valueSize);
    const r = callErrno(
      LIB,
      'bpf_map_lookup_elem',
      DataType.I32,
      [DataType.I32, DataType.U8Array, DataType.U8Array],
      [this.fd, key, out],
    );
    if ((r.value as number) < 0) {
      if (r.errnoCode === 2) return undefined;
      throw new EnvironmentError(`lookup in map ${this.name} failed: ${r.errnoMessage}`, {
        code: 'TLSREC_E_BPF_MAP',
        stage: 'read bpf map',
        hint: hintFor(r.errnoCode, 'check key and value sizes'),
      });
    }
    return out;
  }

  delete(key: Buffer): void {
    const r = callErrno(LIB, 'bpf_map_delete_elem', DataType.I32, [DataType.I32, DataType.U8Array], [this.fd, key]);
    if ((r.value as number) < 0 && r.errnoCode !== 2)
      throw new EnvironmentError(`delete from map ${this.name} failed: ${r.errnoMessage}`, {
        code: 'TLSREC_E_BPF_MAP',
        stage: 'update bpf map',
        hint: hintFor(r.errnoCode, 'check the key size'),
      });
  }
}

export function numPossibleCpus(): number {
  ensureLibbpf();
  return call(LIB, 'libbpf_num_possible_cpus', DataType.I32, [], []) as number;
}

export class BpfObject {
  private ptr: JsExternal | undefined;
  private loaded = false;
  private logBuf = 0;
  private readonly programs = new Map<string, BpfProgram>();
  private readonly maps = new Map<string, BpfMap>();

  private constructor(
    ptr: JsExternal,
    readonly path: string,
    logBuf: number,
  ) {
    this.ptr = ptr;
    this.logBuf = logBuf;
  }

  static open(path: string): BpfObject {
    ensureLibbpf();
    if (!existsSync(path)) {
      throw new EnvironmentError(`BPF object ${path} not found`, {
        code: 'TLSREC_E_BPF_OBJECT',
        stage: 'open bpf object',
        hint: 'rebuild it with `npm run build:bpf` (needs clang, bpftool, libbpf-dev)',
      });
    }
    // struct bpf_object_open_opts (libbpf 1.1): sz@0, object_name@8, relaxed_maps@16, pin_root_path@24,
    // (stub)@32, kconfig@40, btf_custom_path@48, kernel_log_buf@56, kernel_log_size@64, kernel_log_level@72; sz 80.
    // libbpf keeps the log pointer until the object is closed, so the buffer is malloc'd, not a JS Buffer.
    const logBuf = allocMem(LOG_BUF_SIZE);
    const opts = Buffer.alloc(80);
    opts.writeBigUInt64LE(80n, 0);
    opts.writeBigUInt64LE(BigInt(logBuf), 56);
    opts.writeBigUInt64LE(BigInt(LOG_BUF_SIZE), 64);
    opts.writeUInt32LE(0, 72); // 0: libbpf retries a failed load with log level 1 into our buffer
    const r = callErrno(
      LIB,
      'bpf_object__open_file',
      DataType.External,
      [DataType.String, DataType.U8Array],
      [path, opts],
    );
    const ptr = r.value as JsExternal;
    if (isNullPointer(ptr)) {
      freeMem(logBuf);
      throw new EnvironmentError(`cannot open BPF object ${path}: ${r.errnoMessage}`, {
        code: 'TLSREC_E_BPF_OBJECT',
        stage: 'open bpf object',
        hint: 'the file may be damaged: rebuild it with `npm run build:bpf`',
      });
    }
    return new BpfObject(ptr, path, logBuf);
  }

  private obj(): JsExternal {
    if (!this.ptr) throw new Error('BPF object is closed');
    return this.ptr;
  }

  program(name: string): BpfProgram {
    let p = this.programs.get(name);
    if (!p) {
      const ptr = call(
        LIB,
        'bpf_object__find_program_by_name',
        DataType.External,
        [DataType.External, DataType.String],
        [this.obj(), name],
      ) as JsExternal;
      if (isNullPointer(ptr)) throw new Error(`BPF object ${this.path} has no program ${name}`);
      p = new BpfProgram(ptr, name);
      this.programs.set(name, p);
    }
    return p;
  }

  /** A map by name; internal maps by their section: ".rodata", ".bss", ".data". */
  map(name: string): BpfMap {
    let m = this.maps.get(name);
    if (!m) {
      const ptr = call(
        LIB,
        'bpf_object__find_map_by_name',
        DataType.External,
        [DataType.External, DataType.String],
        [this.obj(), name],
      ) as JsExternal;
      if (isNullPointer(ptr)) throw new Error(`BPF object ${this.path} has no map ${name}`);
      m = new BpfMap(ptr, name);
      this.maps.set(name, m);
    }
    return m;
  }

  /** Ring buffer size before load: a power of two, at least one page. */
  setRingbufSize(mapName: string, bytes: number): void {
    if (bytes < 4096 || (bytes & (bytes - 1)) !== 0) {
      throw new EnvironmentError(`ring buffer size ${bytes} is not a power of two of at least 4096`, {
        code: 'TLSREC_E_USAGE_RINGBUF',
        stage: 'configure bpf map',
        hint: 'use e.g. 67108864 (64 MiB)',
      });
    }
    this.map(mapName).setMaxEntries(bytes);
  }

  /** Write the `const volatile` settings: `data` replaces .rodata (it must have the section's exact size). */
  setRodata(data: Buffer): void {
    const m = this.map('.rodata');
    const size = m.initialValueSize();
    if (size !== data.length) throw new Error(`.rodata of ${this.path} is ${size} bytes, got ${data.length}`);
    m.setInitialValue(data);
  }

  /**
   * open() + configure + load(), opening afresh and retrying when the load was interrupted by a
   * signal (a failed bpf_object__load cannot be called again on the same object).
   */
  static openAndLoad(path: string, configure: (obj: BpfObject) => void = () => undefined, attempts = 3): BpfObject {
    for (let attempt = 1; ; attempt++) {
      const obj = BpfObject.open(path);
      try {
        configure(obj);
        obj.load();
        return obj;
      } catch (err) {
        obj.close();
        if (!(err instanceof EnvironmentError && err.code === 'TLSREC_E_BPF_EAGAIN' && attempt < attempts)) throw err;
      }
    }
  }

  load(): void {
    if (!existsSync('/sys/kernel/btf/vmlinux')) {
      throw new EnvironmentError('the kernel lacks BTF (/sys/kernel/btf/vmlinux)', {
        code: 'TLSREC_E_NO_BTF',
        stage: 'load bpf',
        hint: 'use a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distribution kernels since 2021)',
      });
    }
    const rc = call(LIB, 'bpf_object__load', DataType.I32, [DataType.External], [this.obj()]) as number;
    if (rc === -EAGAIN) {
      // The verifier gives up with EAGAIN when a signal arrives while it works (seen with SIGPROF).
      throw new EnvironmentError('loading the BPF programs was interrupted by a signal (EAGAIN)', {
        code: 'TLSREC_E_BPF_EAGAIN',
        stage: 'load bpf',
        hint: 'try again; if it keeps happening, something signals tlsrec constantly (a sampling profiler such as node --cpu-prof does)',
      });
    }
    if (rc < 0) {
      const code = -rc;
      const log = this.readLog();
      const summary = summariseVerifierLog(log);
      const privilege = code === 1 || code === 13;
      throw new EnvironmentError(
        privilege && !summary
          ? `loading BPF programs was refused (${errnoName(code)})`
          : `the kernel rejected the BPF programs of ${this.path} (${errnoName(code)})${summary ? `:\n${summary}` : ''}`,
        {
          code: privilege && !summary ? 'TLSREC_E_PERM' : 'TLSREC_E_VERIFIER',
          stage: 'load bpf',
          hint:
            privilege && !summary
              ? PRIV_HINT
              : 'the kernel may be too old (tlsrec needs 5.17+ with BTF); see the full verifier log with --verbose',
          detail: log || undefined,
        },
      );
    }
    this.loaded = true;
  }

  get isLoaded(): boolean {
    return this.loaded;
  }

  private readLog(): string {
    if (!this.logBuf) return '';
    const view = viewAt(this.logBuf, LOG_BUF_SIZE);
    const end = view.indexOf(0);
    return view.toString('utf8', 0, end < 0 ? LOG_BUF_SIZE : end);
  }

  /** Unloads programs and maps (links must be destroyed first). Safe to call twice. */
  close(): void {
    if (this.ptr) {
      call(LIB, 'bpf_object__close', DataType.Void, [DataType.External], [this.ptr]);
      this.ptr = undefined;
    }
    freeMem(this.logBuf);
    this.logBuf = 0;
    this.programs.clear();
    this.maps.clear();
  }
}
