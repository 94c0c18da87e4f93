// What the kernel has loaded and attached, asked through libbpf (bpf_prog_query,
// bpf_prog_get_next_id, bpf_obj_get_info_by_fd): the tests check that replay's redirect programs
// are attached while a session runs and gone after it, without bpftool.

import { closeSync, openSync } from 'node:fs';
import { EnvironmentError } from '../errors.js';
import { DataType, call, ensureLibbpf } from './ffi.js';
import { LIB, errnoName, hintFor } from './libbpf.js';

/**
 * enum bpf_attach_type of the cgroup sock_addr hooks (bind, connect, sendmsg, recvmsg): the hooks
 * bpf/redirect.bpf.c attaches to, and their neighbours, for asking what a cgroup has attached.
 */
export const CGROUP_SOCK_ADDR_ATTACH_TYPES = {
  inet4Bind: 8,
  inet6Bind: 9,
  inet4Connect: 10,
  inet6Connect: 11,
  udp4Sendmsg: 14,
  udp6Sendmsg: 15,
  udp4Recvmsg: 19,
  udp6Recvmsg: 20,
} as const;

/** enum bpf_prog_type BPF_PROG_TYPE_CGROUP_SOCK_ADDR: programs of SEC("cgroup/connect4") and the like. */
export const BPF_PROG_TYPE_CGROUP_SOCK_ADDR = 18;

/** A program loaded in the kernel, as struct bpf_prog_info describes it. */
export interface LoadedBpfProgram {
  id: number;
  /** enum bpf_prog_type. */
  type: number;
  /** The C function's name, cut to 15 characters by the kernel. */
  name: string;
}

const ENOENT = 2;
const ENOSPC = 28;
/** struct bpf_prog_info up to the end of name[16]; the kernel fills as much as it is given. */
const PROG_INFO_SIZE = 80;

function queryError(what: string, errno: number, hint: string): EnvironmentError {
  return new EnvironmentError(`${what} failed: ${errnoName(errno)}`, {
    code: 'TLSREC_E_BPF_QUERY',
    stage: 'query bpf programs',
    hint: hintFor(errno, hint),
  });
}

/**
 * IDs of the programs attached directly to a cgroup v2 directory at one attach type (bpf_prog_query
 * with no flags: link and legacy attachments alike, not those the cgroup inherits from its parents).
 */
export function cgroupAttachedProgramIds(cgroupPath: string, attachType: number): number[] {
  ensureLibbpf();
  let fd: number;
  try {
    fd = openSync(cgroupPath, 'r');
  } catch (err) {
    throw new EnvironmentError(`cannot open cgroup ${cgroupPath}: ${(err as Error).message}`, {
      code: 'TLSREC_E_BPF_QUERY',
      stage: 'query bpf programs',
      hint: 'check that the cgroup exists (cgroup v2)',
      cause: err,
    });
  }
  try {
    let capacity = 16;
    for (;;) {
      const attachFlags = Buffer.alloc(4);
      const ids = Buffer.alloc(4 * capacity);
      const count = Buffer.alloc(4);
      count.writeUInt32LE(capacity, 0);
      const rc = call(
        LIB,
        'bpf_prog_query',
        DataType.I32,
        [DataType.I32, DataType.I32, DataType.U32, DataType.U8Array, DataType.U8Array, DataType.U8Array],
        [fd, attachType, 0, attachFlags, ids, count],
      ) as number;
      const n = count.readUInt32LE(0);
      // ENOSPC: more programs than room; the kernel has written how many there are.
      if (rc === -ENOSPC && n > capacity) {
        capacity = n;
        continue;
      }
      if (rc < 0) {
        const what = `bpf_prog_query on ${cgroupPath} (attach type ${attachType})`;
        throw queryError(what, -rc, 'the kernel needs CONFIG_CGROUP_BPF and cgroup v2');
      }
      return Array.from({ length: n }, (_, i) => ids.readUInt32LE(4 * i));
    }
  } finally {
    closeSync(fd);
  }
}

/** A loaded program by id (bpf_prog_get_fd_by_id + bpf_obj_get_info_by_fd); undefined if it is gone. */
export function loadedBpfProgram(id: number): LoadedBpfProgram | undefined {
  ensureLibbpf();
  const fd = call(LIB, 'bpf_prog_get_fd_by_id', DataType.I32, [DataType.U32], [id]) as number;
  if (fd === -ENOENT) return undefined;
  if (fd < 0) throw queryError(`bpf_prog_get_fd_by_id(${id})`, -fd, 'run as root');
  try {
    const info = Buffer.alloc(PROG_INFO_SIZE);
    const infoLen = Buffer.alloc(4);
    infoLen.writeUInt32LE(PROG_INFO_SIZE, 0);
    const infoArgs = [DataType.I32, DataType.U8Array, DataType.U8Array];
    const rc = call(LIB, 'bpf_obj_get_info_by_fd', DataType.I32, infoArgs, [fd, info, infoLen]) as number;
    if (rc < 0) throw queryError(`bpf_obj_get_info_by_fd(program ${id})`, -rc, 'run as root');
    // struct bpf_prog_info: type@0 id@4 ... name[16]@64
    const name = info.subarray(64, 80);
    const end = name.indexOf(0);
    return {
      id: info.readUInt32LE(4),
      type: info.readUInt32LE(0),
      name: name.toString('utf8', 0, end < 0 ? name.length : end),
    };
  } finally {
    closeSync(fd);
  }
}

/** Every program loaded in the kernel, in id order (bpf_prog_get_next_id). */
export function loadedBpfPrograms(): LoadedBpfProgram[] {
  ensureLibbpf();
  const programs: LoadedBpfProgram[] = [];
  const next = Buffer.alloc(4);
  for (let id = 0; ; ) {
    const rc = call(LIB, 'bpf_prog_get_next_id', DataType.I32, [DataType.U32, DataType.U8Array], [id, next]) as number;
    if (rc === -ENOENT) return programs;
    if (rc < 0) throw queryError('bpf_prog_get_next_id', -rc, 'run as root');
    id = next.readUInt32LE(0);
    const program = loadedBpfProgram(id);
    if (program) programs.push(program);
  }
}
