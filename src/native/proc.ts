// /proc and ldconfig helpers: which executable files a process runs and maps (to attach uprobes to
// the ones that contain OpenSSL), and the system's libssl files (attached before the command starts,
// because Python and others dlopen libssl only when they first need it).

import { execFileSync } from 'node:child_process';
import { readFileSync, readlinkSync, statSync } from 'node:fs';

/** Path of the running executable of `pid`, or undefined if the process is gone. */
export function processExe(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, '');
  } catch {
    return undefined;
  }
}

/** Parse /proc/PID/maps text: files mapped executable (r-xp), each once. */
export function parseExecutableMappings(mapsText: string): string[] {
  const out = new Set<string>();
  for (const line of mapsText.split('\n')) {
    // address perms offset dev inode path
    const m = /^\S+\s+(\S{4})\s+\S+\s+\S+\s+(\d+)\s+(\/.*)$/.exec(line);
    if (!m || m[1]![2] !== 'x' || m[2] === '0') continue;
    out.add(m[3]!.replace(/ \(deleted\)$/, ''));
  }
  return [...out];
}

/** Files `pid` maps executable; empty when the process is gone. */
export function processMappedFiles(pid: number): string[] {
  try {
    return parseExecutableMappings(readFileSync(`/proc/${pid}/maps`, 'utf8'));
  } catch {
    return [];
  }
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
  for (const p of ['/lib/x86_64-linux-gnu/libssl.so.3', '/usr/lib/x86_64-linux-gnu/libssl.so.3', '/usr/lib64/libssl.so.3', '/lib/aarch64-linux-gnu/libssl.so.3']) {
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
