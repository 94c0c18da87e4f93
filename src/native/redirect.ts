// Loads bpf/redirect.bpf.o and attaches its cgroup sock_addr hooks to the app's cgroup, so that the
// app's outgoing TCP connections reach the mock server and its DNS queries reach the mock DNS
// server. Only that cgroup is affected; close() detaches everything.

import { fileURLToPath } from 'node:url';
import { isIPv4 } from 'node:net';
import { BpfObject, type BpfLink } from './libbpf.js';
import { EnvironmentError, causeText, isTlsrecError } from '../errors.js';

/** A destination that is NOT redirected: an IPv4 address with a port (0 = any port), or a CIDR. */
export type PassthroughRule = { ip: string; port: number } | { cidr: string };

export interface RedirectOptions {
  cgroupPath: string;
  /** Port of the mock server on 127.0.0.1. */
  mockPort: number;
  /** Port of the mock DNS server on 127.0.0.1. */
  dnsPort: number;
  /** The app's own port: connections to it on loopback are left alone. */
  appPort?: number;
  passthrough: PassthroughRule[];
  /** Default: bpf/redirect.bpf.o of this package. */
  objectPath?: string;
}

export interface RedirectStats {
  tcpRedirected: bigint;
  tcpPassed: bigint;
  dnsRedirected: bigint;
  dnsRepliesFixed: bigint;
}

export interface Redirect {
  stats(): RedirectStats;
  /** Detach every program and unload the object. Safe to call twice. */
  close(): void;
}

export function defaultRedirectObjectPath(): string {
  return fileURLToPath(new URL('../../bpf/redirect.bpf.o', import.meta.url));
}

const PROGRAMS = ['tlsrec_connect4', 'tlsrec_sendmsg4', 'tlsrec_recvmsg4', 'tlsrec_connect6'] as const;

/** Bytes of an IPv4 address in network order (as struct bpf_sock_addr holds it). */
function ip4Bytes(ip: string): Buffer {
  if (!isIPv4(ip)) throw new Error(`not an IPv4 address: ${ip}`);
  return Buffer.from(ip.split('.').map(Number));
}

/** A port as the kernel's __u32 user_port holds it: network order in the low 16 bits of memory. */
function portField(port: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16BE(port, 0);
  return b;
}

export function attachRedirect(opts: RedirectOptions): Redirect {
  const path = opts.objectPath ?? defaultRedirectObjectPath();
  const obj = BpfObject.openAndLoad(path);
  const links: BpfLink[] = [];
  const cleanup = (): void => {
    for (const l of links.splice(0).reverse()) {
      try {
        l.destroy();
      } catch {
        // keep detaching the others
      }
    }
    obj.close();
  };
  try {
    // struct redirect_config { enabled, mock_ip4, mock_port, dns_port, app_port } (5 x __u32)
    const cfg = Buffer.concat([
      Buffer.from([1, 0, 0, 0]),
      ip4Bytes('127.0.0.1'),
      portField(opts.mockPort),
      portField(opts.dnsPort),
      opts.appPort ? portField(opts.appPort) : Buffer.alloc(4),
    ]);
    obj.map('redirect_config').update(Buffer.alloc(4), cfg);
    for (const rule of opts.passthrough) {
      if ('cidr' in rule) {
        const [net, bits] = rule.cidr.split('/');
        const key = Buffer.alloc(8);
        key.writeUInt32LE(Number(bits ?? 32), 0);
        ip4Bytes(net ?? '').copy(key, 4);
        obj.map('passthrough_cidr').update(key, Buffer.from([1]));
      } else {
        obj.map('passthrough').update(Buffer.concat([ip4Bytes(rule.ip), portField(rule.port)]), Buffer.from([1]));
      }
    }
    for (const name of PROGRAMS) {
      try {
        links.push(obj.program(name).attachCgroup(opts.cgroupPath));
      } catch (err) {
        // IPv6 is a bonus: a kernel without connect6 still gets the IPv4 redirect.
        if (name === 'tlsrec_connect6') continue;
        throw err;
      }
    }
  } catch (err) {
    cleanup();
    if (isTlsrecError(err)) throw err;
    throw new EnvironmentError(`cannot set up the mock redirect: ${causeText(err)}`, {
      code: 'TLSREC_E_REDIRECT',
      stage: 'attach mock redirect',
      hint: 'run as root on a kernel with cgroup v2 BPF (cgroup/connect4); check the passthrough entries',
      cause: err,
    });
  }
  let closed = false;
  return {
    stats(): RedirectStats {
      const read = (i: number): bigint => {
        if (closed) return 0n;
        const k = Buffer.alloc(4);
        k.writeUInt32LE(i, 0);
        return obj.map('redirect_stats').lookup(k, 8)?.readBigUInt64LE(0) ?? 0n;
      };
      return { tcpRedirected: read(0), tcpPassed: read(1), dnsRedirected: read(2), dnsRepliesFixed: read(3) };
    },
    close(): void {
      if (closed) return;
      closed = true;
      cleanup();
    },
  };
}
