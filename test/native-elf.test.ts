import { describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { realpathSync, statSync } from 'node:fs';
import { opensslOffsets, symbolOffsetsSync } from '../src/native/elf.js';
import {
  fileId,
  parseExecutableMappings,
  parseLdconfig,
  processMappings,
  processState,
  systemLibssl,
} from '../src/native/proc.js';

describe('elf symbol lookup', () => {
  it('finds SSL_* in the node binary (OpenSSL linked statically, exported in .dynsym)', () => {
    const m = opensslOffsets(process.execPath);
    expect(m?.get('SSL_read')).toBeGreaterThan(0);
    expect(m?.get('SSL_write_ex')).toBeGreaterThan(0);
  });

  it('matches nm and the program headers for the system libssl', () => {
    const lib = systemLibssl().find((p) => p.endsWith('libssl.so.3'));
    if (!lib) return; // no system OpenSSL 3 here
    const m = opensslOffsets(lib)!;
    // nm prints the virtual address; libssl's text segment is mapped with vaddr == offset.
    const nm = execFileSync('nm', ['-D', '--defined-only', lib], { encoding: 'utf8' });
    const line = nm.split('\n').find((l) => / T SSL_read@/.test(l))!;
    expect(m.get('SSL_read')).toBe(parseInt(line.split(' ')[0]!, 16));
  });

  it('returns nothing for files without OpenSSL and for non-ELF files', () => {
    expect(opensslOffsets('/bin/sh')).toBeUndefined();
    expect(opensslOffsets('/etc/hostname')).toBeUndefined();
    expect(symbolOffsetsSync('/bin/sh', ['no_such_function']).size).toBe(0);
  });
});

describe('proc parsing', () => {
  it('lists executable file mappings once, with the device as the kernel encodes it', () => {
    const text = [
      '55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 123 /usr/bin/python3.11',
      '55d0c0a01000-55d0c0a02000 r-xp 00001000 08:01 123 /usr/bin/python3.11',
      '7f00-7f01 r-xp 00000000 103:1a 18446744073709551 /usr/lib/x86_64-linux-gnu/libssl.so.3 (deleted)',
      '7f01-7f02 r-xp 00002000 103:1a 18446744073709551 /usr/lib/x86_64-linux-gnu/libssl.so.3 (deleted)',
      '7f02-7f03 rw-p 00000000 00:00 0 ',
      '7ffd-7ffe r-xp 00000000 00:00 0                          [vdso]',
    ].join('\n');
    expect(parseExecutableMappings(text)).toEqual([
      { path: '/usr/bin/python3.11', dev: (8 << 20) | 1, ino: 123n },
      // MAJOR << 20 | MINOR (struct super_block's s_dev), not stat()'s st_dev; inodes beyond 2^53 kept exact.
      { path: '/usr/lib/x86_64-linux-gnu/libssl.so.3', dev: (0x103 << 20) | 0x1a, ino: 18446744073709551n },
    ]);
  });

  it('reads the state of a process: stopped, running, gone', async () => {
    const child = spawn('sleep', ['30']);
    try {
      await new Promise((r) => child.once('spawn', r));
      child.kill('SIGSTOP');
      for (let i = 0; i < 100 && processState(child.pid!) !== 'T'; i++) await new Promise((r) => setTimeout(r, 10));
      expect(processState(child.pid!)).toBe('T');
      child.kill('SIGCONT');
      for (let i = 0; i < 100 && processState(child.pid!) === 'T'; i++) await new Promise((r) => setTimeout(r, 10));
      expect(processState(child.pid!)).toMatch(/^[RS]$/);
    } finally {
      child.kill('SIGKILL');
    }
    await new Promise((r) => child.once('exit', r));
    expect(processState(child.pid!)).toBeUndefined();
  });

  it('matches its own mappings in /proc/self/maps to stat()', () => {
    // The kernel encoding differs from st_dev's, but both name the node binary the same file.
    const self = processMappings('self').find((m) => m.path === realpathSync(process.execPath));
    expect(self).toBeDefined();
    expect(self!.ino).toBe(statSync(process.execPath, { bigint: true }).ino);
  });

  it('parses ldconfig -p', () => {
    const text =
      "3 libs found in cache `/etc/ld.so.cache'\n\tlibssl3.so (libc6,x86-64) => /lib/x86_64-linux-gnu/libssl3.so\n\tlibssl.so.3 (libc6,x86-64) => /lib/x86_64-linux-gnu/libssl.so.3\n\tlibz.so.1 (libc6,x86-64) => /lib/libz.so.1\n";
    expect(parseLdconfig(text, ['libssl.so'])).toEqual(['/lib/x86_64-linux-gnu/libssl.so.3']);
  });

  it('identifies files by device and inode', () => {
    expect(fileId(process.execPath)).toMatch(/^\d+:\d+$/);
    expect(fileId('/nonexistent')).toBeUndefined();
  });
});
