// Shared by the end-to-end tests: can this machine load eBPF programs? Tests that need it skip
// with the reason printed, except in CI (TLSREC_REQUIRE_EBPF=1), where the lack of eBPF fails them.

import { existsSync, readFileSync } from 'node:fs';

export interface EbpfSupport {
  ok: boolean;
  reason: string;
}

export function ebpfSupport(): EbpfSupport {
  if (process.getuid?.() !== 0) return { ok: false, reason: 'not root (eBPF programs and uprobes need root)' };
  if (!existsSync('/sys/kernel/btf/vmlinux'))
    return { ok: false, reason: 'kernel lacks BTF (/sys/kernel/btf/vmlinux)' };
  const mounts = readFileSync('/proc/mounts', 'utf8');
  if (!/ cgroup2 /.test(mounts)) return { ok: false, reason: 'no cgroup v2 hierarchy mounted' };
  return { ok: true, reason: '' };
}

/**
 * `describe` or `describe.skip`, depending on eBPF support. With TLSREC_REQUIRE_EBPF=1 the suite
 * runs anyway, so that a missing feature fails loudly instead of skipping.
 */
export function needsEbpf(): { run: boolean; reason: string } {
  const support = ebpfSupport();
  if (support.ok) return { run: true, reason: '' };
  if (process.env.TLSREC_REQUIRE_EBPF === '1') {
    return { run: true, reason: support.reason };
  }
  console.warn(`skipping eBPF end-to-end tests: ${support.reason}`);
  return { run: false, reason: support.reason };
}
