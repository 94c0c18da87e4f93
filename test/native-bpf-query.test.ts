// Asking the kernel which BPF programs are loaded and which a cgroup has attached, through libbpf
// (bpf_prog_query, bpf_prog_get_next_id, bpf_obj_get_info_by_fd): what the end-to-end tests use to
// prove that nothing is left attached, on a machine without bpftool.

import { describe, expect, it } from 'vitest';
import { EnvironmentError } from '../src/errors.js';
import { Cgroup } from '../src/native/cgroup.js';
import {
  BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
  CGROUP_SOCK_ADDR_ATTACH_TYPES,
  cgroupAttachedProgramIds,
  loadedBpfProgram,
  loadedBpfPrograms,
} from '../src/native/bpf-query.js';
import { attachRedirect } from '../src/native/redirect.js';
import { needsEbpf } from './helpers/env.js';

const ebpf = needsEbpf();

/** Program ids attached to the cgroup, by attach type name (every sock_addr hook). */
function attached(cgroupPath: string): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [hook, type] of Object.entries(CGROUP_SOCK_ADDR_ATTACH_TYPES))
    out[hook] = cgroupAttachedProgramIds(cgroupPath, type);
  return out;
}

/** The kernel frees a program once its last reference goes, which may be after an RCU grace period. */
async function waitUntilUnloaded(ids: number[], ms = 5000): Promise<number[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const left = ids.filter((id) => loadedBpfProgram(id) !== undefined);
    if (left.length === 0 || Date.now() > deadline) return left;
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.runIf(ebpf.run)('BPF program queries (real kernel)', () => {
  it('sees the redirect programs attached to a cgroup and loaded, and neither once detached', async () => {
    const cg = Cgroup.create('bpf-query');
    try {
      expect(Object.values(attached(cg.path)).flat()).toEqual([]);

      const redirect = attachRedirect({ cgroupPath: cg.path, mockPort: 9, dnsPort: 9, passthrough: [] });
      let ids: number[];
      try {
        const byHook = attached(cg.path);
        // One program at each hook redirect.bpf.c has, nothing at the others.
        expect(byHook.inet4Connect).toHaveLength(1);
        expect(byHook.udp4Sendmsg).toHaveLength(1);
        expect(byHook.udp4Recvmsg).toHaveLength(1);
        expect(byHook.inet6Connect).toHaveLength(1);
        expect([...byHook.inet4Bind, ...byHook.inet6Bind, ...byHook.udp6Sendmsg, ...byHook.udp6Recvmsg]).toEqual([]);

        ids = [byHook.inet4Connect, byHook.udp4Sendmsg, byHook.udp4Recvmsg, byHook.inet6Connect].flat();
        const named = ids.map((id) => loadedBpfProgram(id));
        expect(named).toEqual([
          { id: ids[0], type: BPF_PROG_TYPE_CGROUP_SOCK_ADDR, name: 'tlsrec_connect4' },
          { id: ids[1], type: BPF_PROG_TYPE_CGROUP_SOCK_ADDR, name: 'tlsrec_sendmsg4' },
          { id: ids[2], type: BPF_PROG_TYPE_CGROUP_SOCK_ADDR, name: 'tlsrec_recvmsg4' },
          { id: ids[3], type: BPF_PROG_TYPE_CGROUP_SOCK_ADDR, name: 'tlsrec_connect6' },
        ]);

        // The list of every loaded program has them too, described the same, in increasing id order.
        const all = loadedBpfPrograms();
        expect(all.filter((p) => ids.includes(p.id))).toEqual(named);
        expect(all.map((p) => p.id)).toEqual([...all.map((p) => p.id)].sort((a, b) => a - b));
      } finally {
        redirect.close();
      }

      expect(Object.values(attached(cg.path)).flat()).toEqual([]);
      expect(await waitUntilUnloaded(ids)).toEqual([]);
      expect(loadedBpfPrograms().filter((p) => ids.includes(p.id))).toEqual([]);
    } finally {
      await cg.destroy();
    }
  });

  it('says which cgroup it could not open', () => {
    try {
      cgroupAttachedProgramIds('/nonexistent/cgroup', CGROUP_SOCK_ADDR_ATTACH_TYPES.inet4Connect);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(EnvironmentError);
      expect((err as EnvironmentError).message).toContain('/nonexistent/cgroup');
      expect((err as EnvironmentError).stage).toBe('query bpf programs');
    }
  });

  it('answers undefined for a program id that is not loaded', () => {
    // Ids count up from 1 and are never reused before wrapping at 2^31.
    expect(loadedBpfProgram(0x7fffffff)).toBeUndefined();
  });
});
