#!/usr/bin/env bash
# Build bpf/redirect.bpf.o (the replay-time connect/sendmsg/recvmsg redirect). The .o is committed,
# so users need no clang. Needs clang, libbpf-dev and bpftool (for vmlinux.h, git-ignored).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -s vmlinux.h ]; then
  bpftool btf dump file /sys/kernel/btf/vmlinux format c > vmlinux.h
fi
clang -O2 -g -target bpf -D__TARGET_ARCH_x86 -I. -c redirect.bpf.c -o redirect.bpf.o
# Drop DWARF but keep BTF (libbpf needs it for the maps).
llvm-strip -g redirect.bpf.o 2>/dev/null || true
echo "built bpf/redirect.bpf.o"
