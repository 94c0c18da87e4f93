// /proc and ldconfig helpers: which executable files a process runs and maps (to attach uprobes to
// the ones that contain OpenSSL), whether it is stopped, and the system's libssl files (looked at
// before the command starts; attached up front when TLSREC_ATTACH_ON_MAP=0).

import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';

/** Path of the running executable of `pid`, or undefined if the process is gone. */
export function processExe(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, '');
  } catch {
    return undefined;
  }
}

/** A file mapped executable, with the device and inode the kernel knows it by. */
export interface ExecutableMapping {
  path: string;
  /** The super block's s_dev as the kernel encodes it (MAJOR << 20 | MINOR), as bpf/capture.h's file_key. */
  dev: number;
  ino: bigint;
}

/** Parse /proc/PID/maps text: files mapped executable (r-xp), each once. */
export function parseExecutableMappings(mapsText: string): ExecutableMapping[] {
  const out = new Map<string, ExecutableMapping>();
  for (const line of mapsText.split('\n')) {
    // address perms offset dev(major:minor, hex) inode path
    const m = /^\S+\s+(\S{4})\s+\S+\s+([0-9a-f]+):([0-9a-f]+)\s+(\d+)\s+(\/.*)$/.exec(line);
    if (!m || m[1]![2] !== 'x' || m[4] === '0') continue;
    const path = m[5]!.replace(/ \(deleted\)$/, '');
    if (!out.has(path))
      out.set(path, { path, dev: parseInt(m[2]!, 16) * 2 ** 20 + parseInt(m[3]!, 16), ino: BigInt(m[4]!) });
  }
  return [...out.values()];
}

/** Files `pid` maps executable; empty when the process is gone. */
export function processMappings(pid: number | 'self'): ExecutableMapping[] {
  try {
    return parseExecutableMappings(readFileSync(`/proc/${pid}/maps`, 'utf8'));
  } catch {
    return [];
  }
}

/** The fields of /proc/PID/stat after the command name (state, ppid, …), or undefined when the process is gone. */
export function statFields(pid: number | string): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) S ppid ...": comm may itself hold spaces and parentheses.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/**
 * The state letter of /proc/PID/stat ('R', 'S', 'T' stopped, 't' stopped by a tracer, …), or
 * undefined when the process is gone (a zombie says 'Z').
 */
export function processState(pid: number): string | undefined {
  return statFields(pid)?.[0];
}

/** The child of `ppid` whose command line contains `marker` (e.g. a script's name), or undefined. */
export function childProcessOf(ppid: number, marker: string): number | undefined {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(marker) && Number(statFields(name)?.[1]) === ppid)
        return Number(name);
    } catch {
      // exited while we looked
    }
  }
  return undefined;
}

/** Parse `ldconfig -p` output: absolute paths of libraries whose name starts with one of `prefixes`. */
export function parseLdconfig(text: string, prefixes: readonly string[]): string[] {
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^\s+(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)$/.exec(line);
    if (!m) continue;
    if (prefixes.some((p) => m[1]!.startsWith(p))) out.add(m[3]!);
  }
  return [...out];
}

/** The system's libssl files (ldconfig's cache), plus the usual locations when ldconfig is missing. */
export function systemLibssl(): string[] {
  let text = '';
  for (const bin of ['ldconfig', '/sbin/ldconfig', '/usr/sbin/ldconfig']) {
    try {
      text = execFileSync(bin, ['-p'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      break;
    } catch {
      // try the next location
    }
  }
  const found = parseLdconfig(text, ['libssl.so']);
  for (const p of [
    '/lib/x86_64-linux-gnu/libssl.so.3',
    '/usr/lib/x86_64-linux-gnu/libssl.so.3',
    '/usr/lib64/libssl.so.3',
    '/lib/aarch64-linux-gnu/libssl.so.3',
  ]) {
    if (!found.includes(p) && fileId(p) !== undefined) found.push(p);
  }
  return found;
}

/** "dev:ino" of a file (symlinks followed): uprobes are attached once per file, not per path. */
export function fileId(path: string): string | undefined {
  try {
    const st = statSync(path, { bigint: true });
    if (!st.isFile()) return undefined;
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}
