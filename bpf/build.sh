#!/usr/bin/env bash
# Build the BPF objects from source (CO-RE): capture.bpf.o (recording: uprobes, syscall and exec
# tracepoints), redirect.bpf.o (replay: cgroup connect/sendmsg/recvmsg redirect to the mocks) and
# bench/floor/count.bpf.o (the overhead benchmark's count-only floor).
# The .o files are committed so users need no clang; run this (npm run build:bpf) after editing them.
# Needs: clang (14+), bpftool, libbpf-dev (headers), a kernel with /sys/kernel/btf/vmlinux.
set -euo pipefail
cd "$(dirname "$0")"
ARCH=$(uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
if [ ! -s vmlinux.h ] || [ "${REGEN_VMLINUX:-0}" = 1 ]; then
  bpftool btf dump file /sys/kernel/btf/vmlinux format c > vmlinux.h.tmp
  mv vmlinux.h.tmp vmlinux.h
fi
for prog in capture redirect; do
  # -g: BTF for CO-RE relocations; -O2: required by the verifier; mcpu=v3: atomic fetch-add, 32-bit jumps.
  clang -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_${ARCH} -I. -c "${prog}.bpf.c" -o "${prog}.bpf.o.tmp"
  # Strip DWARF (keeps .BTF/.BTF.ext) so the committed object stays small.
  llvm-strip -g "${prog}.bpf.o.tmp" 2>/dev/null || true
  mv "${prog}.bpf.o.tmp" "${prog}.bpf.o"
done
# The overhead benchmark's count-only floor (bench/overhead.mjs, config f).
clang -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_${ARCH} -I. -c ../bench/floor/count.bpf.c -o ../bench/floor/count.bpf.o.tmp
llvm-strip -g ../bench/floor/count.bpf.o.tmp 2>/dev/null || true
mv ../bench/floor/count.bpf.o.tmp ../bench/floor/count.bpf.o
echo "built:"; ls -l capture.bpf.o redirect.bpf.o ../bench/floor/count.bpf.o
