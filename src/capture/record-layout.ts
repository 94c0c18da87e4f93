// The kernel<->user layout of bpf/capture.h (and of struct cap_addr in bpf/capture.bpf.c), described
// once: every struct user space reads or writes, field by field (offset, size, type), and every enum
// value it compares with. Code reads records through these names, never through bare offsets;
// test/capture-record-layout.test.ts parses the C sources and checks every entry here against them.
// All integers are little-endian (x86-64 and arm64, the architectures bpf/build.sh targets).

export type FieldType = 'u8' | 'u16' | 'u32' | 'u64';

export interface Field {
  /** The member's name in the C struct. */
  readonly c: string;
  readonly offset: number;
  /** Bytes: the element size times the element count for an array (`__u8 laddr[16]`). */
  readonly size: number;
  /** The element type (`__u8`, …, `__u64`). */
  readonly type: FieldType;
}

export interface StructLayout<Name extends string> {
  /** `struct <c>` of the C sources. */
  readonly c: string;
  /** sizeof(struct <c>). */
  readonly size: number;
  readonly fields: { readonly [K in Name]: Field };
}

/** struct cap_event: the header of every record of the `events` and `mapped` rings; `len` payload bytes follow it. */
export const CAP_EVENT = {
  c: 'cap_event',
  size: 48,
  fields: {
    tsNs: { c: 'ts_ns', offset: 0, size: 8, type: 'u64' },
    /** TLS: the SSL*; socket: fd << 32 | creation stamp; CAP_MAP: the file's inode number. */
    conn: { c: 'conn', offset: 8, size: 8, type: 'u64' },
    /** data/loss: position of the first byte within conn+dir; CAP_MAP: the file's device (kernel encoding). */
    pos: { c: 'pos', offset: 16, size: 8, type: 'u64' },
    tgid: { c: 'tgid', offset: 24, size: 4, type: 'u32' },
    tid: { c: 'tid', offset: 28, size: 4, type: 'u32' },
    /** data: bytes moved by the whole call; loss: bytes lost. */
    callLen: { c: 'call_len', offset: 32, size: 4, type: 'u32' },
    /** data: offset of this chunk within the call. */
    chunkOff: { c: 'chunk_off', offset: 36, size: 4, type: 'u32' },
    /** Payload bytes that follow the header. */
    len: { c: 'len', offset: 40, size: 4, type: 'u32' },
    /** enum cap_type (RecordType). */
    type: { c: 'type', offset: 44, size: 1, type: 'u8' },
    /** enum cap_source (Source). */
    source: { c: 'source', offset: 45, size: 1, type: 'u8' },
    /** enum cap_dir (Dir). */
    dir: { c: 'dir', offset: 46, size: 1, type: 'u8' },
    /** open: enum cap_role (Role); loss: enum cap_loss_reason (LossReason). */
    aux: { c: 'aux', offset: 47, size: 1, type: 'u8' },
  },
} as const satisfies StructLayout<string>;

/** Bytes of a record header (the C side's CAP_HDR_SIZE). */
export const CAP_HDR_SIZE = CAP_EVENT.size;

/** struct cap_addr (bpf/capture.bpf.c): the payload of a CAP_OPEN record. Ports in host order. */
export const CAP_ADDR = {
  c: 'cap_addr',
  size: 40,
  fields: {
    /** AF_INET or AF_INET6. */
    family: { c: 'family', offset: 0, size: 2, type: 'u16' },
    localPort: { c: 'lport', offset: 2, size: 2, type: 'u16' },
    remotePort: { c: 'rport', offset: 4, size: 2, type: 'u16' },
    pad: { c: 'pad', offset: 6, size: 2, type: 'u16' },
    /** AF_INET: the first 4 bytes; AF_INET6: all 16. */
    localAddr: { c: 'laddr', offset: 8, size: 16, type: 'u8' },
    remoteAddr: { c: 'raddr', offset: 24, size: 16, type: 'u8' },
  },
} as const satisfies StructLayout<string>;

/** struct file_key: a file as the kernel names it; the key of the `known_files` map. */
export const FILE_KEY = {
  c: 'file_key',
  size: 16,
  fields: {
    ino: { c: 'ino', offset: 0, size: 8, type: 'u64' },
    /** super_block->s_dev (MAJOR << 20 | MINOR), not stat()'s encoding. */
    dev: { c: 'dev', offset: 8, size: 4, type: 'u32' },
    pad: { c: 'pad', offset: 12, size: 4, type: 'u32' },
  },
} as const satisfies StructLayout<string>;

/** struct cap_counters: one CPU's entry of the per-CPU `counters` array. */
export const CAP_COUNTERS = {
  c: 'cap_counters',
  size: 24,
  fields: {
    ringbufFull: { c: 'ringbuf_full', offset: 0, size: 8, type: 'u64' },
    readFault: { c: 'read_fault', offset: 8, size: 8, type: 'u64' },
    bytesLost: { c: 'bytes_lost', offset: 16, size: 8, type: 'u64' },
  },
} as const satisfies StructLayout<string>;

/** struct cap_config: the program's .rodata, written by user space before load. */
export const CAP_CONFIG = {
  c: 'cap_config',
  size: 16,
  fields: {
    targetCgid: { c: 'target_cgid', offset: 0, size: 8, type: 'u64' },
    attachOnMap: { c: 'attach_on_map', offset: 8, size: 1, type: 'u8' },
    pad: { c: 'pad', offset: 9, size: 7, type: 'u8' },
  },
} as const satisfies StructLayout<string>;

/** enum cap_type: what a record is. */
export const RecordType = { CAP_DATA: 1, CAP_OPEN: 2, CAP_CLOSE: 3, CAP_LOSS: 4, CAP_EXEC: 5, CAP_MAP: 6 } as const;
/** enum cap_source: which probes saw the bytes. */
export const Source = { CAP_SRC_TLS: 1, CAP_SRC_SOCKET: 2 } as const;
/** enum cap_dir: the app read (in) or wrote (out) the bytes. */
export const Dir = { CAP_DIR_IN: 0, CAP_DIR_OUT: 1 } as const;
/** enum cap_role: how an open record's connection came about. */
export const Role = { CAP_ROLE_CONNECT: 1, CAP_ROLE_ACCEPT: 2 } as const;
/** enum cap_loss_reason: why a loss record's bytes are missing. */
export const LossReason = { CAP_LOSS_RINGBUF_FULL: 1, CAP_LOSS_READ_FAULT: 2 } as const;

/** Every struct and enum above, by its C name (what the layout test checks). */
export const STRUCTS: ReadonlyArray<StructLayout<string>> = [CAP_EVENT, CAP_ADDR, FILE_KEY, CAP_COUNTERS, CAP_CONFIG];
export const ENUMS: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  cap_type: RecordType,
  cap_source: Source,
  cap_dir: Dir,
  cap_role: Role,
  cap_loss_reason: LossReason,
};

/** max_entries of the ring buffer maps in bpf/capture.bpf.c (`events` is resized before load; this is its default). */
export const RING_MAX_ENTRIES = { events: 64 << 20, mapped: 64 << 10 } as const;
