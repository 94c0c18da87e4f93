// Whether this process may load BPF programs and attach uprobes: root, CAP_SYS_ADMIN, or CAP_BPF
// with CAP_PERFMON, read from the effective capability set in /proc/self/status.

import { readFileSync } from 'node:fs';

const CAP_SYS_ADMIN = 21;
const CAP_PERFMON = 38;
const CAP_BPF = 39;

/** The effective capabilities (the CapEff line) of a /proc/PID/status text. */
export function effectiveCapabilities(statusText: string): bigint {
  return BigInt('0x' + (/^CapEff:\s*([0-9a-f]+)/m.exec(statusText)?.[1] ?? '0'));
}

/** True when `capEff` allows loading BPF programs and uprobes. */
export function capabilitiesAllowBpf(capEff: bigint): boolean {
  const has = (bit: number): boolean => (capEff & (1n << BigInt(bit))) !== 0n;
  return has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON));
}

/** True when this process runs as root or holds the capabilities BPF programs and uprobes need. */
export function mayLoadBpf(): boolean {
  if (process.getuid?.() === 0) return true;
  return capabilitiesAllowBpf(effectiveCapabilities(readFileSync('/proc/self/status', 'utf8')));
}
