// SPDX-License-Identifier: GPL-2.0
// Replay-time redirect for `tlsrec test`: cgroup sock_addr hooks attached to the app's cgroup only.
//  - TCP connect (IPv4, and IPv6 when the socket is dual-stack) -> 127.0.0.1:<mock port>, except the
//    app's own port on loopback, the mock/DNS ports themselves and passthrough destinations.
//  - UDP to port 53 (connect for connected sockets as glibc uses them, sendmsg for unconnected ones)
//    -> 127.0.0.1:<dns port>; recvmsg puts the original resolver address back as the reply's source,
//    since resolvers drop answers from an address they did not ask.
// Settings live in a one-entry config map written by user space (src/native/redirect.ts) after load.
// Only UAPI types are used (struct bpf_sock_addr), so no CO-RE relocations are needed.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

_Static_assert(__builtin_offsetof(struct bpf_sock_addr, user_ip6) == 8, "bpf_sock_addr layout");
#define STORE_CTX_U32(ctx, off, val) \
	asm volatile("*(u32 *)(%0 + " #off ") = %1" ::"r"(ctx), "r"((__u32)(val)) : "memory")

#define SOCK_STREAM_ 1
#define SOCK_DGRAM_ 2

// All addresses and ports in network byte order, as struct bpf_sock_addr has them.
struct redirect_config {
	__u32 enabled;
	__u32 mock_ip4;
	__u32 mock_port;
	__u32 dns_port;
	__u32 app_port; // 0: none
};

struct passthrough_key {
	__u32 ip4;
	__u32 port; // 0: any port
};

struct cidr_key {
	__u32 prefixlen;
	__u32 ip4;
};

struct orig_dest {
	__u32 ip4;
	__u32 port;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct redirect_config);
} redirect_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct passthrough_key);
	__type(value, __u8);
} passthrough SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct cidr_key);
	__type(value, __u8);
} passthrough_cidr SEC(".maps");

// Original resolver per UDP socket (socket cookie), for recvmsg4.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct orig_dest);
} dns_orig SEC(".maps");

// Counters for diagnostics: 0 tcp redirected, 1 tcp passed, 2 dns redirected, 3 dns replies fixed.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} redirect_stats SEC(".maps");

static __always_inline void count(__u32 i)
{
	__u64 *v = bpf_map_lookup_elem(&redirect_stats, &i);
	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline struct redirect_config *get_config(void)
{
	__u32 zero = 0;
	struct redirect_config *c = bpf_map_lookup_elem(&redirect_config, &zero);
	if (!c || !c->enabled)
		return 0;
	return c;
}

static __always_inline int is_loopback4(__u32 ip)
{
	// network order: the first octet is the lowest byte in memory
	return (bpf_ntohl(ip) >> 24) == 127;
}

// 1 when this TCP destination must be left alone.
static __always_inline int keep_tcp4(struct redirect_config *c, __u32 ip, __u32 port)
{
	if (is_loopback4(ip) && (port == c->mock_port || port == c->dns_port || (c->app_port && port == c->app_port)))
		return 1;
	struct passthrough_key k = { .ip4 = ip, .port = port };
	if (bpf_map_lookup_elem(&passthrough, &k))
		return 1;
	k.port = 0;
	if (bpf_map_lookup_elem(&passthrough, &k))
		return 1;
	struct cidr_key ck = { .prefixlen = 32, .ip4 = ip };
	if (bpf_map_lookup_elem(&passthrough_cidr, &ck))
		return 1;
	return 0;
}

static __always_inline void to_dns(struct bpf_sock_addr *ctx, struct redirect_config *c)
{
	struct orig_dest o = { .ip4 = ctx->user_ip4, .port = ctx->user_port };
	__u64 cookie = bpf_get_socket_cookie(ctx);
	bpf_map_update_elem(&dns_orig, &cookie, &o, BPF_ANY);
	ctx->user_ip4 = c->mock_ip4;
	ctx->user_port = c->dns_port;
	count(2);
}

SEC("cgroup/connect4")
int tlsrec_connect4(struct bpf_sock_addr *ctx)
{
	struct redirect_config *c = get_config();
	if (!c)
		return 1;
	__u32 ip = ctx->user_ip4;
	__u32 port = ctx->user_port;
	if (ctx->type == SOCK_STREAM_) {
		if (keep_tcp4(c, ip, port)) {
			count(1);
			return 1;
		}
		ctx->user_ip4 = c->mock_ip4;
		ctx->user_port = c->mock_port;
		count(0);
	} else if (ctx->type == SOCK_DGRAM_ && port == bpf_htons(53)) {
		if (!keep_tcp4(c, ip, port))
			to_dns(ctx, c);
	}
	return 1;
}

SEC("cgroup/sendmsg4")
int tlsrec_sendmsg4(struct bpf_sock_addr *ctx)
{
	struct redirect_config *c = get_config();
	if (!c)
		return 1;
	if (ctx->type == SOCK_DGRAM_ && ctx->user_port == bpf_htons(53) && !keep_tcp4(c, ctx->user_ip4, ctx->user_port))
		to_dns(ctx, c);
	return 1;
}

SEC("cgroup/recvmsg4")
int tlsrec_recvmsg4(struct bpf_sock_addr *ctx)
{
	struct redirect_config *c = get_config();
	if (!c)
		return 1;
	if (ctx->user_ip4 != c->mock_ip4 || ctx->user_port != c->dns_port)
		return 1;
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct orig_dest *o = bpf_map_lookup_elem(&dns_orig, &cookie);
	if (o) {
		ctx->user_ip4 = o->ip4;
		ctx->user_port = o->port;
		count(3);
	}
	return 1;
}

// IPv6 TCP: ::1 and IPv4-mapped destinations go to the mock server as ::ffff:127.0.0.1 (reachable
// from a dual-stack socket; a V6ONLY socket gets a connect error instead of reaching the network).
SEC("cgroup/connect6")
int tlsrec_connect6(struct bpf_sock_addr *ctx)
{
	struct redirect_config *c = get_config();
	if (!c || ctx->type != SOCK_STREAM_)
		return 1;
	__u32 a0 = ctx->user_ip6[0], a1 = ctx->user_ip6[1], a2 = ctx->user_ip6[2], a3 = ctx->user_ip6[3];
	__u32 port = ctx->user_port;
	if (a0 == 0 && a1 == 0 && a2 == bpf_htonl(0xffff)) {
		if (keep_tcp4(c, a3, port)) {
			count(1);
			return 1;
		}
	} else if (a0 == 0 && a1 == 0 && a2 == 0 && a3 == bpf_htonl(1)) {
		if (port == c->mock_port || port == c->dns_port || (c->app_port && port == c->app_port)) {
			count(1);
			return 1;
		}
	}
	// Stores with fixed offsets written out: clang otherwise hoists the offset 8 into a register and
	// stores through a moved ctx pointer, which the verifier refuses ("dereference of modified ctx ptr").
	STORE_CTX_U32(ctx, 8, 0);
	STORE_CTX_U32(ctx, 12, 0);
	STORE_CTX_U32(ctx, 16, bpf_htonl(0xffff));
	STORE_CTX_U32(ctx, 20, c->mock_ip4);
	ctx->user_port = c->mock_port;
	count(0);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
