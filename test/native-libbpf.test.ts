import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EnvironmentError } from '../src/errors.js';
import { Cgroup } from '../src/native/cgroup.js';
import { captureUnsupportedReason, defaultBpfObjectPath } from '../src/capture/capture-session.js';
import { decodeRecord } from '../src/capture/decode.js';
import { BpfObject, summariseVerifierLog, uprobeMultiSupported } from '../src/native/libbpf.js';

const unsupported = captureUnsupportedReason();
if (unsupported && process.env.TLSREC_REQUIRE_EBPF === '1')
  throw new Error(`eBPF required (TLSREC_REQUIRE_EBPF=1) but unavailable: ${unsupported}`);
const itEbpf = unsupported ? it.skip : it;
const itEbpfIf = (cond: boolean) => (unsupported || !cond ? it.skip : it);

function hasClang(): boolean {
  try {
    execFileSync('clang', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('libbpf wrapper', () => {
  it('summarises a verifier log to its last meaningful lines', () => {
    const log =
      'libbpf: prog x: -- BEGIN PROG LOAD LOG --\n0: R1=ctx()\n1: (79) r0 = *(u64 *)(r1 +999)\ninvalid bpf_context access off=999 size=8\nprocessed 2 insns\n-- END PROG LOAD LOG --\n';
    expect(summariseVerifierLog(log)).toContain('invalid bpf_context access off=999');
    expect(summariseVerifierLog(log)).not.toContain('processed');
  });

  it('tells uprobe_multi support from the kernel BTF string table, and TLSREC_UPROBE_MULTI=0 turns it off', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tlsrec-btf-'));
    const saved = process.env.TLSREC_UPROBE_MULTI;
    try {
      // Only the exact name counts, not a longer one that starts with it.
      const withLink = join(dir, 'with');
      writeFileSync(withLink, Buffer.from('\0bpf_link\0bpf_uprobe_multi_link\0bpf_uprobe_multi_link_lops\0', 'latin1'));
      const without = join(dir, 'without');
      writeFileSync(without, Buffer.from('\0bpf_link\0bpf_uprobe_multi_link_lops\0bpf_kprobe_multi_link\0', 'latin1'));
      delete process.env.TLSREC_UPROBE_MULTI;
      expect(uprobeMultiSupported(withLink)).toBe(process.arch === 'x64' || process.arch === 'arm64');
      expect(uprobeMultiSupported(without)).toBe(false);
      expect(uprobeMultiSupported(join(dir, 'missing'))).toBe(false);
      process.env.TLSREC_UPROBE_MULTI = '0';
      expect(uprobeMultiSupported(withLink)).toBe(false);
    } finally {
      if (saved === undefined) delete process.env.TLSREC_UPROBE_MULTI;
      else process.env.TLSREC_UPROBE_MULTI = saved;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says what to do when the object file is missing', () => {
    try {
      BpfObject.open('/nonexistent/x.bpf.o');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(EnvironmentError);
      expect((err as EnvironmentError).stage).toBe('open bpf object');
      expect((err as EnvironmentError).hint).toMatch(/build:bpf/);
    }
  });

  it('rejects a ring buffer size that is not a power of two', () => {
    const obj = BpfObject.open(defaultBpfObjectPath());
    try {
      expect(() => obj.setRingbufSize('events', 100000)).toThrow(EnvironmentError);
    } finally {
      obj.close();
    }
  });

  itEbpf('loads the capture object and reads and writes maps by key', async () => {
    const cg = Cgroup.create('native-libbpf');
    const obj = BpfObject.open(defaultBpfObjectPath());
    try {
      const cfg = Buffer.alloc(16); // struct cap_config
      cfg.writeBigUInt64LE(cg.id);
      obj.setRodata(cfg);
      obj.setRingbufSize('events', 1 << 16);
      obj.load();
      const socks = obj.map('socks');
      expect(socks.fd).toBeGreaterThan(0);
      const key = Buffer.from([1, 0, 0, 0, 2, 0, 0, 0]);
      const value = Buffer.alloc(32, 0); // struct sock_val: pos[2], sk, stamp at 24, ...
      value.writeUInt32LE(77, 24);
      socks.update(key, value);
      expect(socks.lookup(key, 32)?.readUInt32LE(24)).toBe(77);
      socks.delete(key);
      expect(socks.lookup(key, 32)).toBeUndefined();
    } finally {
      obj.close();
      await cg.destroy();
    }
  });

  itEbpfIf(hasClang())('reports a verifier rejection with a summary and the full log in detail', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tlsrec-bad-bpf-'));
    try {
      // Reads past the end of the tracepoint context: compiles, but the verifier refuses it.
      writeFileSync(
        join(dir, 'bad.bpf.c'),
        '#define SEC(n) __attribute__((section(n), used))\nchar LICENSE[] SEC("license") = "GPL";\nSEC("raw_tp/sys_enter") int bad(unsigned long long *ctx) { return ctx[4000]; }\n',
      );
      execFileSync('clang', [
        '-O2',
        '-g',
        '-target',
        'bpf',
        '-c',
        join(dir, 'bad.bpf.c'),
        '-o',
        join(dir, 'bad.bpf.o'),
      ]);
      const obj = BpfObject.open(join(dir, 'bad.bpf.o'));
      try {
        obj.load();
        expect.unreachable();
      } catch (err) {
        expect(err).toBeInstanceOf(EnvironmentError);
        const e = err as EnvironmentError;
        if (process.env.SHOW) console.log(e.message, '\nHINT', e.hint, '\nDETAIL', e.detail?.length);
        expect(e.code).toBe('TLSREC_E_VERIFIER');
        expect(e.stage).toBe('load bpf');
        expect(e.message).toMatch(/invalid|access|off=/i);
        expect(e.detail).toMatch(/r1|R1/);
      } finally {
        obj.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('record decoding', () => {
  it('decodes data, open and loss records', () => {
    const hdr = (type: number, source: number, dir: number, aux: number, len: number) => {
      const b = Buffer.alloc(48 + len);
      b.writeBigUInt64LE(123n, 0);
      b.writeBigUInt64LE(0xabcdn, 8);
      b.writeBigUInt64LE(16384n, 16);
      b.writeUInt32LE(10, 24);
      b.writeUInt32LE(11, 28);
      b.writeUInt32LE(20000, 32);
      b.writeUInt32LE(16384, 36);
      b.writeUInt32LE(len, 40);
      b[44] = type;
      b[45] = source;
      b[46] = dir;
      b[47] = aux;
      return b;
    };
    const d = hdr(1, 1, 1, 0, 3);
    d.write('abc', 48);
    expect(decodeRecord(d)).toMatchObject({
      type: 'data',
      source: 'tls',
      dir: 'out',
      pos: 16384n,
      callLen: 20000,
      chunkOff: 16384,
      tgid: 10,
      tid: 11,
      connId: 0xabcdn,
    });
    expect((decodeRecord(d) as { data: Buffer }).data.toString()).toBe('abc');
    const o = hdr(2, 2, 0, 2, 40);
    o.writeUInt16LE(2, 48);
    o.writeUInt16LE(8080, 50);
    o.writeUInt16LE(40000, 52);
    Buffer.from([127, 0, 0, 2]).copy(o, 56);
    Buffer.from([127, 0, 0, 9]).copy(o, 72);
    expect(decodeRecord(o)).toMatchObject({
      type: 'open',
      role: 'accept',
      localAddr: '127.0.0.2',
      localPort: 8080,
      remoteAddr: '127.0.0.9',
      remotePort: 40000,
    });
    expect(decodeRecord(hdr(4, 2, 0, 2, 0))).toMatchObject({
      type: 'loss',
      reason: 'read_fault',
      len: 20000,
      pos: 16384n,
    });
    expect(decodeRecord(hdr(99, 2, 0, 0, 0))).toBeUndefined();
  });
});
