// SPDX-License-Identifier: GPL-2.0
/* The overhead benchmark's floor (bench/overhead.mjs, config f): uprobe and uretprobe programs that
 * only count, attached by bench/floor/count-probes.mjs exactly as tlsrec attaches its own (uprobe_multi
 * links where the kernel has them, on the same functions of the same files). What tlsrec costs
 * beyond this is the work its programs and its own processes do. */
#include "../../bpf/vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

/* [0] uprobe entries, [1] returns; [2] syscall entries, [3] exits (config g, --syscalls) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

static __always_inline int bump(__u32 k)
{
	__u64 *v = bpf_map_lookup_elem(&counts, &k);

	if (v)
		*v += 1;
	return 0;
}

SEC("uprobe")
int count_entry(void *ctx)
{
	return bump(0);
}

SEC("uretprobe")
int count_return(void *ctx)
{
	return bump(1);
}

/* With --syscalls, the floor of tlsrec's plain-socket capture, whose raw syscall tracepoints run on
 * every system call of every process (config g). */
SEC("tp_btf/sys_enter")
int BPF_PROG(count_sys_enter, struct pt_regs *regs, long nr)
{
	return bump(2);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(count_sys_exit, struct pt_regs *regs, long ret)
{
	return bump(3);
}
