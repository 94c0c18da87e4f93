// SPDX-License-Identifier: GPL-2.0
/* tlsrec capture programs: plaintext of TLS connections (uprobes on OpenSSL) and of plain sockets
 * (syscall tracepoints), for processes in one cgroup only. Every record goes through one ring buffer
 * so that user space sees events in the order they were produced across CPUs. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "capture.h"

char LICENSE[] SEC("license") = "GPL";

/* Written by user space before load (bpf_map__set_initial_value on .rodata); the verifier then
 * treats it as a constant. This must stay the only .rodata content: user space writes it at offset 0. */
const volatile struct cap_config cfg = {};

#if defined(__TARGET_ARCH_arm64)
#define NR_read 63
#define NR_write 64
#define NR_close 57
#define NR_readv 65
#define NR_writev 66
#define NR_connect 203
#define NR_accept 202
#define NR_accept4 242
#define NR_sendto 206
#define NR_recvfrom 207
#define NR_sendmsg 211
#define NR_recvmsg 212
#define NR_mmap 222
/* At sys_exit x0 holds the return value; the first argument is kept in orig_x0. */
#define SC_ARG0(r) ((r)->orig_x0)
#define SC_ARG1(r) ((r)->regs[1])
#define SC_ARG2(r) ((r)->regs[2])
#define SC_ARG3(r) ((r)->regs[3])
#define SC_NR(r) ((r)->syscallno)
#else
#define NR_read 0
#define NR_write 1
#define NR_close 3
#define NR_readv 19
#define NR_writev 20
#define NR_connect 42
#define NR_accept 43
#define NR_accept4 288
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47
#define NR_mmap 9
#define SC_ARG0(r) ((r)->di)
#define SC_ARG1(r) ((r)->si)
#define SC_ARG2(r) ((r)->dx)
#define SC_ARG3(r) ((r)->r10) /* the syscall ABI passes the fourth argument in r10, not rcx */
#define SC_NR(r) ((r)->orig_ax)
#endif

#define EINPROGRESS 115
#define AF_INET 2
#define AF_INET6 10

/* Default 64 MiB; user space sets max_entries before load (bpf_map__set_max_entries). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cap_counters);
} counters SEC(".maps");

/* The kernel's adaptive wake-up: an irq_work (an interrupt; a VM exit on a virtual machine) only
 * for a record that lands in a ring the consumer had emptied. User space drains from a timer while
 * records keep coming, so under load that is one a drain (about 1,200 in a 5 s wrk run of the bare
 * HTTPS server, no throughput change measurable), and with no traffic it sleeps on the rings in
 * epoll_wait (src/capture/ring-drainer.ts) until this wakes it: no timer costs CPU while nothing
 * happens. For the `mapped` ring it is what lets a stopped process go on within a moment. */
#define RB_SUBMIT 0

/* One record being assembled: header + up to one chunk. Per-CPU because it is far larger than the
 * 512-byte BPF stack; sent with bpf_ringbuf_output so that a record takes only the ring space its
 * payload needs (reserve would need a constant size, wasting 16 KiB for a 100-byte write). */
struct scratch_rec {
	struct cap_event hdr;
	__u8 data[CAP_CHUNK];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch_rec);
} scratch SEC(".maps");

/* ---- connection state ---- */

struct sock_key {
	__u32 tgid;
	__u32 fd;
};

enum sock_state { SOCK_UNKNOWN = 0, SOCK_PLAIN = 1, SOCK_TLS = 2 };

struct sock_val {
	__u64 pos[2]; /* next byte position per direction */
	__u64 sk;     /* the struct sock behind the fd: tells our socket from one that reused the number */
	__u32 stamp;  /* distinguishes reuses of the same fd number */
	__u8 state;   /* enum sock_state */
	__u8 role;
	__u16 pad;
};

/* LRU: a process that exits without close() must not fill the map for the rest of the recording. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sock_key);
	__type(value, struct sock_val);
} socks SEC(".maps");

struct tls_key {
	__u64 ssl;
	__u32 tgid;
	__u32 pad;
};

struct tls_val {
	__u64 pos[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tls_key);
	__type(value, struct tls_val);
} tls_conns SEC(".maps");

struct tls_args {
	__u64 ssl;
	__u64 buf;
	__u64 lenp; /* size_t* of the _ex functions, 0 otherwise */
	__u8 dir;
	__u8 active; /* set at entry, cleared at exit */
	__u8 pad[6];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct tls_args);
} tls_active SEC(".maps");

__u32 stamp_counter = 0;

static __always_inline bool in_scope(void)
{
	return cfg.target_cgid != 0 && bpf_get_current_cgroup_id() == cfg.target_cgid;
}

static __always_inline struct cap_counters *get_counters(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&counters, &zero);
}

/* A small record (open, close, exec) that found the ring full: counted, as emit_loss counts data. */
static __always_inline void count_ringbuf_full(void)
{
	struct cap_counters *c = get_counters();

	if (c)
		__sync_fetch_and_add(&c->ringbuf_full, 1);
}

/* Best effort: a small record telling user space which bytes are missing (it would see the gap
 * from `pos` anyway; this adds the reason). The counters are the authoritative tally. */
static __always_inline void emit_loss(__u8 source, __u64 conn, __u8 dir, __u64 pos, __u32 len, __u8 reason)
{
	struct cap_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	struct cap_counters *c = get_counters();
	__u64 id = bpf_get_current_pid_tgid();

	if (c) {
		if (reason == CAP_LOSS_RINGBUF_FULL)
			__sync_fetch_and_add(&c->ringbuf_full, 1);
		else
			__sync_fetch_and_add(&c->read_fault, 1);
		__sync_fetch_and_add(&c->bytes_lost, len);
	}
	if (!e)
		return;
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	e->conn = conn;
	e->pos = pos;
	e->tgid = id >> 32;
	e->tid = (__u32)id;
	e->call_len = len;
	e->type = CAP_LOSS;
	e->source = source;
	e->dir = dir;
	e->aux = reason;
	bpf_ringbuf_submit(e, RB_SUBMIT);
}

/* ---- chunked data emission ---- */

struct walk_ctx {
	__u64 conn;
	__u64 pos;      /* position of the call's first byte */
	__u64 iov;      /* user pointer to struct iovec[], 0 for a single buffer */
	__u64 buf;      /* current segment */
	__u64 seg_left; /* bytes left in the current segment */
	__u32 iov_idx;
	__u32 iov_cnt;
	__u32 total;    /* bytes the call really moved */
	__u32 done;     /* bytes handled so far */
	__u8 source;
	__u8 dir;
};

struct user_iovec {
	__u64 base;
	__u64 len;
};

static int walk_step(__u32 i, void *arg)
{
	struct walk_ctx *w = arg;
	struct scratch_rec *rec;
	__u32 zero = 0;
	__u64 n;
	__u64 id;

	if (w->done >= w->total)
		return 1;
	if (w->seg_left == 0) {
		struct user_iovec v;

		if (!w->iov || w->iov_idx >= w->iov_cnt || w->iov_idx >= CAP_MAX_IOV) {
			/* The iovecs ended before the returned count: nothing left to read from. */
			emit_loss(w->source, w->conn, w->dir, w->pos + w->done, w->total - w->done, CAP_LOSS_READ_FAULT);
			return 1;
		}
		if (bpf_probe_read_user(&v, sizeof(v), (void *)(w->iov + (__u64)w->iov_idx * sizeof(v)))) {
			emit_loss(w->source, w->conn, w->dir, w->pos + w->done, w->total - w->done, CAP_LOSS_READ_FAULT);
			return 1;
		}
		w->iov_idx++;
		w->buf = v.base;
		w->seg_left = v.len;
		return 0;
	}

	n = w->seg_left;
	if (n > w->total - w->done)
		n = w->total - w->done;
	if (n > CAP_CHUNK)
		n = CAP_CHUNK;
	if (n == 0)
		return 1;

	rec = bpf_map_lookup_elem(&scratch, &zero);
	if (!rec)
		return 1;
	if (bpf_probe_read_user(rec->data, n, (void *)w->buf)) {
		emit_loss(w->source, w->conn, w->dir, w->pos + w->done, n, CAP_LOSS_READ_FAULT);
	} else {
		id = bpf_get_current_pid_tgid();
		rec->hdr.ts_ns = bpf_ktime_get_ns();
		rec->hdr.conn = w->conn;
		rec->hdr.pos = w->pos + w->done;
		rec->hdr.tgid = id >> 32;
		rec->hdr.tid = (__u32)id;
		rec->hdr.call_len = w->total;
		rec->hdr.chunk_off = w->done;
		rec->hdr.len = n;
		rec->hdr.type = CAP_DATA;
		rec->hdr.source = w->source;
		rec->hdr.dir = w->dir;
		rec->hdr.aux = 0;
		if (bpf_ringbuf_output(&events, rec, sizeof(rec->hdr) + n, RB_SUBMIT))
			emit_loss(w->source, w->conn, w->dir, w->pos + w->done, n, CAP_LOSS_RINGBUF_FULL);
	}
	w->buf += n;
	w->seg_left -= n;
	w->done += n;
	return 0;
}

/* Emit `total` bytes, from one buffer (iov == 0) or from an iovec array, as CAP_CHUNK records. */
static __always_inline void emit_data(__u8 source, __u64 conn, __u8 dir, __u64 pos, __u64 buf, __u64 iov,
				      __u32 iov_cnt, __u32 total)
{
	struct walk_ctx w = {};

	w.conn = conn;
	w.pos = pos;
	w.iov = iov;
	w.iov_cnt = iov_cnt;
	w.total = total;
	w.source = source;
	w.dir = dir;
	if (!iov) {
		w.buf = buf;
		w.seg_left = total;
	}
	bpf_loop(CAP_MAX_STEPS, walk_step, &w, 0);
}

/* ---- TLS: OpenSSL uprobes ---- */

static __always_inline int tls_enter(void *ssl, void *buf, void *lenp, __u8 dir)
{
	struct tls_args *a;

	if (!in_scope())
		return 0;
	a = bpf_task_storage_get(&tls_active, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!a)
		return 0;
	a->ssl = (__u64)ssl;
	a->buf = (__u64)buf;
	a->lenp = (__u64)lenp;
	a->dir = dir;
	a->active = 1;
	return 0;
}

static __always_inline int tls_exit(long rc, bool ex)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_args *a;
	struct tls_key k = {};
	struct tls_val *v;
	__u64 len = 0;
	__u64 pos;

	a = bpf_task_storage_get(&tls_active, bpf_get_current_task_btf(), 0, 0);
	if (!a || !a->active)
		return 0;
	a->active = 0;
	/* The common Node case (SSL_read returning -1: would block) ends here. */
	if (ex) {
		if ((int)rc != 1 || !a->lenp || bpf_probe_read_user(&len, sizeof(len), (void *)a->lenp))
			len = 0;
	} else if ((int)rc > 0) {
		len = (__u32)(int)rc;
	}
	if (len == 0 || len > 0xffffffffULL)
		return 0;

	k.ssl = a->ssl;
	k.tgid = id >> 32;
	v = bpf_map_lookup_elem(&tls_conns, &k);
	if (!v) {
		struct tls_val zero = {};

		bpf_map_update_elem(&tls_conns, &k, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&tls_conns, &k);
		if (!v)
			return 0;
	}
	/* Advance by the full length first, so a lost chunk leaves a visible gap. */
	if (a->dir == CAP_DIR_OUT)
		pos = __sync_fetch_and_add(&v->pos[1], len);
	else
		pos = __sync_fetch_and_add(&v->pos[0], len);
	emit_data(CAP_SRC_TLS, a->ssl, a->dir, pos, a->buf, 0, 0, (__u32)len);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(ssl_read_enter, void *ssl, void *buf, int num)
{
	return tls_enter(ssl, buf, 0, CAP_DIR_IN);
}

SEC("uretprobe")
int BPF_KRETPROBE(ssl_read_exit, long rc)
{
	return tls_exit(rc, false);
}

SEC("uprobe")
int BPF_KPROBE(ssl_write_enter, void *ssl, const void *buf, int num)
{
	return tls_enter(ssl, (void *)buf, 0, CAP_DIR_OUT);
}

SEC("uretprobe")
int BPF_KRETPROBE(ssl_write_exit, long rc)
{
	return tls_exit(rc, false);
}

SEC("uprobe")
int BPF_KPROBE(ssl_read_ex_enter, void *ssl, void *buf, __u64 num, __u64 *readbytes)
{
	return tls_enter(ssl, buf, readbytes, CAP_DIR_IN);
}

SEC("uretprobe")
int BPF_KRETPROBE(ssl_read_ex_exit, long rc)
{
	return tls_exit(rc, true);
}

SEC("uprobe")
int BPF_KPROBE(ssl_write_ex_enter, void *ssl, const void *buf, __u64 num, __u64 *written)
{
	return tls_enter(ssl, (void *)buf, written, CAP_DIR_OUT);
}

SEC("uretprobe")
int BPF_KRETPROBE(ssl_write_ex_exit, long rc)
{
	return tls_exit(rc, true);
}

SEC("uprobe")
int BPF_KPROBE(ssl_free_enter, void *ssl)
{
	struct tls_key k = {};
	struct cap_event *e;
	__u64 id;

	if (!in_scope() || !ssl)
		return 0;
	id = bpf_get_current_pid_tgid();
	k.ssl = (__u64)ssl;
	k.tgid = id >> 32;
	/* Only connections that carried data get a close event (SSL_free also runs for unused SSL*s). */
	if (!bpf_map_lookup_elem(&tls_conns, &k))
		return 0;
	bpf_map_delete_elem(&tls_conns, &k);
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_ringbuf_full();
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	e->conn = (__u64)ssl;
	e->tgid = id >> 32;
	e->tid = (__u32)id;
	e->type = CAP_CLOSE;
	e->source = CAP_SRC_TLS;
	bpf_ringbuf_submit(e, RB_SUBMIT);
	return 0;
}

/* ---- plain sockets: syscall tracepoints (tp_btf: no kprobes and no tracefs needed) ---- */

struct cap_addr {
	__u16 family;
	__u16 lport; /* host order */
	__u16 rport; /* host order */
	__u16 pad;
	__u8 laddr[16];
	__u8 raddr[16];
};

struct open_rec {
	struct cap_event hdr;
	struct cap_addr addr;
};

/* The struct sock behind fd of the current task, or NULL. */
static __always_inline struct sock *fd_sock(__u32 fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct file **fdarr;
	struct file *f = NULL;
	struct socket *so;
	unsigned int max;

	max = BPF_CORE_READ(task, files, fdt, max_fds);
	if (fd >= max)
		return NULL;
	fdarr = BPF_CORE_READ(task, files, fdt, fd);
	if (bpf_probe_read_kernel(&f, sizeof(f), &fdarr[fd]) || !f)
		return NULL;
	so = BPF_CORE_READ(f, private_data);
	if (!so)
		return NULL;
	return BPF_CORE_READ(so, sk);
}

static __always_inline void emit_close(__u64 id, __u32 fd, __u32 stamp)
{
	struct cap_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count_ringbuf_full();
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	e->conn = ((__u64)fd << 32) | stamp;
	e->tgid = id >> 32;
	e->tid = (__u32)id;
	e->type = CAP_CLOSE;
	e->source = CAP_SRC_SOCKET;
	bpf_ringbuf_submit(e, RB_SUBMIT);
}

static __always_inline void track_socket(__u32 fd, __u8 role)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct sock_key k = { .tgid = id >> 32, .fd = fd };
	struct sock_val v = {};
	struct sock_val *old;
	struct open_rec *r;
	struct sock *sk;
	__u16 family;

	sk = fd_sock(fd);
	if (!sk)
		return;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	/* Only TCP/IP sockets: Unix sockets (IPC, DNS via nscd, ...) are not HTTP traffic we record. */
	if (family != AF_INET && family != AF_INET6)
		return;
	/* The number was ours before: that socket was closed, even if its close() was not seen. */
	old = bpf_map_lookup_elem(&socks, &k);
	if (old && old->sk != (__u64)sk)
		emit_close(id, fd, old->stamp);
	v.stamp = __sync_fetch_and_add(&stamp_counter, 1);
	v.role = role;
	v.sk = (__u64)sk;
	bpf_map_update_elem(&socks, &k, &v, BPF_ANY);

	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count_ringbuf_full();
		return;
	}
	__builtin_memset(r, 0, sizeof(*r));
	r->hdr.ts_ns = bpf_ktime_get_ns();
	r->hdr.conn = ((__u64)fd << 32) | v.stamp;
	r->hdr.tgid = id >> 32;
	r->hdr.tid = (__u32)id;
	r->hdr.len = sizeof(struct cap_addr);
	r->hdr.type = CAP_OPEN;
	r->hdr.source = CAP_SRC_SOCKET;
	r->hdr.aux = role;
	r->addr.family = family;
	r->addr.lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	r->addr.rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		__u32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 d = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(r->addr.laddr, &l, 4);
		__builtin_memcpy(r->addr.raddr, &d, 4);
	} else {
		BPF_CORE_READ_INTO(&r->addr.laddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&r->addr.raddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
	bpf_ringbuf_submit(r, RB_SUBMIT);
}

/* The syscalls sys_exit looks at (close aside): all others return at once. */
static __always_inline bool is_tracked_syscall(long nr)
{
	switch (nr) {
	case NR_connect:
	case NR_accept:
	case NR_accept4:
	case NR_read:
	case NR_write:
	case NR_readv:
	case NR_writev:
	case NR_sendto:
	case NR_recvfrom:
	case NR_sendmsg:
	case NR_recvmsg:
		return true;
	default:
		return false;
	}
}

/* After close(fd): the close event of the socket we tracked on fd, which is forgotten. At the exit
 * the number is already free, and another thread may have reused it for a socket it tracked (the
 * entry is then that one's, with its own struct sock): that one is left alone. There is no
 * sys_enter program to do this before the fd goes: attached, it costs every system call on the
 * machine as much again as sys_exit (bench/README.md). */
static __always_inline void close_socket(__u64 id, __u32 fd)
{
	struct sock_key k = { .tgid = id >> 32, .fd = fd };
	struct sock_val *v = bpf_map_lookup_elem(&socks, &k);

	if (!v || (__u64)fd_sock(fd) == v->sk)
		return;
	emit_close(id, fd, v->stamp);
	bpf_map_delete_elem(&socks, &k);
}

/* ---- attach on first map: stop a process that maps an unknown executable file ---- */

/* Files user space has looked at (attached the OpenSSL probes to, or found without OpenSSL). A
 * process in scope that maps any other file executable is stopped until user space has looked at
 * it: the probes are then in place before the process can call into the file. This is what lets
 * tlsrec attach only to files its command really maps (an up-front probe in the system libssl
 * traps every libssl user on the machine, in and out of scope: bench/README.md). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct file_key);
	__type(value, __u8);
} known_files SEC(".maps");

/* CAP_MAP records, apart from `events`: a full data ring must not cost a stopped process its
 * wake-up. User space sleeps on both rings when idle and drains this one first on every pass
 * (src/capture/attach-policy.ts): a stopped process waits at most one drain period. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 << 10);
} mapped SEC(".maps");

#define PROT_EXEC 0x4
#define MAP_ANONYMOUS 0x20
#define SIGSTOP 19

static __always_inline void file_key_of(struct file *f, struct file_key *k)
{
	k->ino = BPF_CORE_READ(f, f_inode, i_ino);
	k->dev = BPF_CORE_READ(f, f_inode, i_sb, s_dev);
}

/* Stop the current process (all its threads) if `k` is a file user space has not looked at, and
 * tell user space. The stop takes effect when the process returns to user mode: after the mmap or
 * execve that called this, before any instruction of the new mapping runs. */
static __always_inline void stop_if_unknown(struct file_key *k)
{
	struct cap_event *e;
	__u64 id;

	if (bpf_map_lookup_elem(&known_files, k))
		return;
	/* No record, no stop: a process nobody would wake must never be stopped. User space's
	 * periodic rescan then finds the file late (its first calls unrecorded). */
	e = bpf_ringbuf_reserve(&mapped, sizeof(*e), 0);
	if (!e)
		return;
	if (bpf_send_signal(SIGSTOP)) {
		bpf_ringbuf_discard(e, 0);
		return;
	}
	id = bpf_get_current_pid_tgid();
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	e->conn = k->ino;
	e->pos = k->dev;
	e->tgid = id >> 32;
	e->tid = (__u32)id;
	e->type = CAP_MAP;
	bpf_ringbuf_submit(e, RB_SUBMIT);
}

static long vma_file_key(struct task_struct *task, struct vm_area_struct *vma, void *ctx)
{
	struct file *f = BPF_CORE_READ(vma, vm_file);

	if (f)
		file_key_of(f, ctx);
	return 0;
}

/* At the exit of an mmap() in scope: a file mapped executable (ld.so loading a library, dlopen). */
static __always_inline void mmap_exit(struct pt_regs *regs, long ret)
{
	struct file_key k = {};

	if (!cfg.attach_on_map || ret < 0 || !(SC_ARG2(regs) & PROT_EXEC) || (SC_ARG3(regs) & MAP_ANONYMOUS))
		return;
	/* The new mapping's file, as /proc/PID/maps names it. bpf_find_vma only try-locks the mm: if
	 * another thread holds it, ino stays 0 and user space looks at every file the process maps. */
	bpf_find_vma(bpf_get_current_task_btf(), (__u64)ret, vma_file_key, &k, 0);
	stop_if_unknown(&k);
}

struct user_msghdr_min {
	__u64 name;
	__u32 namelen;
	__u32 pad;
	__u64 iov;
	__u64 iovlen;
};

SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit, struct pt_regs *regs, long ret)
{
	__u64 id;
	struct sock_key k;
	struct sock_val *v;
	__u64 buf = 0, iov = 0, pos;
	__u32 iov_cnt = 0;
	__u8 dir;
	__u32 nr;

	nr = SC_NR(regs);
	if (nr == NR_mmap) {
		if (in_scope())
			mmap_exit(regs, ret);
		return 0;
	}
	/* Most syscalls (epoll_wait, futex, ...) are none of ours: decided from the number alone. */
	if ((nr != NR_close && !is_tracked_syscall(nr)) || !in_scope())
		return 0;
	/* The arguments are still in the registers saved at entry (orig_x0 for the first on arm64). */
	id = bpf_get_current_pid_tgid();
	k.tgid = id >> 32;
	k.fd = (__u32)SC_ARG0(regs);
	if (nr == NR_close) {
		close_socket(id, k.fd);
		return 0;
	}

	if (nr == NR_connect) {
		/* Node connects non-blocking: -EINPROGRESS is a connection on its way. */
		if (ret == 0 || ret == -EINPROGRESS)
			track_socket(k.fd, CAP_ROLE_CONNECT);
		return 0;
	}
	if (nr == NR_accept || nr == NR_accept4) {
		if (ret >= 0)
			track_socket((__u32)ret, CAP_ROLE_ACCEPT);
		return 0;
	}
	if (ret <= 0)
		return 0;
	v = bpf_map_lookup_elem(&socks, &k);
	if (!v)
		return 0;

	switch (nr) {
	case NR_read:
	case NR_recvfrom:
		dir = CAP_DIR_IN;
		buf = SC_ARG1(regs);
		break;
	case NR_write:
	case NR_sendto:
		dir = CAP_DIR_OUT;
		buf = SC_ARG1(regs);
		break;
	case NR_readv:
		dir = CAP_DIR_IN;
		iov = SC_ARG1(regs);
		iov_cnt = SC_ARG2(regs);
		break;
	case NR_writev:
		dir = CAP_DIR_OUT;
		iov = SC_ARG1(regs);
		iov_cnt = SC_ARG2(regs);
		break;
	case NR_recvmsg:
	case NR_sendmsg: {
		struct user_msghdr_min m;

		dir = nr == NR_recvmsg ? CAP_DIR_IN : CAP_DIR_OUT;
		if (bpf_probe_read_user(&m, sizeof(m), (void *)SC_ARG1(regs))) {
			emit_loss(CAP_SRC_SOCKET, ((__u64)k.fd << 32) | v->stamp, dir, 0, ret, CAP_LOSS_READ_FAULT);
			return 0;
		}
		iov = m.iov;
		iov_cnt = m.iovlen;
		break;
	}
	default:
		return 0;
	}

	if (v->state == SOCK_UNKNOWN) {
		/* First bytes decide: a TLS record header (handshake, version 3.x) means the plaintext comes
		 * through the uprobes and the ciphertext must not be recorded. */
		__u8 head[2] = {};
		__u64 first = buf;

		if (iov) {
			struct user_iovec fv = {};
			bpf_probe_read_user(&fv, sizeof(fv), (void *)iov);
			first = fv.base;
		}
		bpf_probe_read_user(head, sizeof(head), (void *)first);
		if (ret >= 2 && head[0] == 0x16 && head[1] == 0x03) {
			v->state = SOCK_TLS;
			return 0;
		}
		v->state = SOCK_PLAIN;
	} else if (v->state == SOCK_TLS) {
		return 0;
	}

	if (dir == CAP_DIR_OUT)
		pos = __sync_fetch_and_add(&v->pos[1], (__u64)ret);
	else
		pos = __sync_fetch_and_add(&v->pos[0], (__u64)ret);
	emit_data(CAP_SRC_SOCKET, ((__u64)k.fd << 32) | v->stamp, dir, pos, buf, iov, iov_cnt, (__u32)ret);
	return 0;
}

/* ---- exec: user space attaches uprobes to files the new image maps ---- */

#define EXEC_NAME_MAX 256

struct exec_rec {
	struct cap_event hdr;
	char filename[EXEC_NAME_MAX];
};

SEC("tp_btf/sched_process_exec")
int BPF_PROG(sched_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct exec_rec *r;
	__u64 id;
	long n;

	if (!in_scope())
		return 0;
	/* The program execve() mapped (ld.so maps the libraries later, through mmap). */
	if (cfg.attach_on_map) {
		struct file_key k = {};
		struct file *exe = BPF_CORE_READ(p, mm, exe_file);

		if (exe) {
			file_key_of(exe, &k);
			stop_if_unknown(&k);
		}
	}
	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count_ringbuf_full();
		return 0;
	}
	id = bpf_get_current_pid_tgid();
	__builtin_memset(&r->hdr, 0, sizeof(r->hdr));
	r->hdr.ts_ns = bpf_ktime_get_ns();
	r->hdr.tgid = id >> 32;
	r->hdr.tid = (__u32)id;
	r->hdr.type = CAP_EXEC;
	n = bpf_probe_read_kernel_str(r->filename, sizeof(r->filename), BPF_CORE_READ(bprm, filename));
	r->hdr.len = n > 0 ? n - 1 : 0;
	bpf_ringbuf_submit(r, RB_SUBMIT);
	return 0;
}
