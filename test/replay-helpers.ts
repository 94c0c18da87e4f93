// Shared helpers for the replay tests: free ports, root/cgroup detection with an explicit skip reason.
import { createServer } from 'node:net';
import { findCgroup2Mount } from '../src/native/cgroup.js';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Why cgroup-based tests cannot run here, or undefined when they can. Fails instead when TLSREC_REQUIRE_EBPF=1. */
export function cgroupSkipReason(): string | undefined {
  let reason: string | undefined;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) reason = 'not root: creating a cgroup needs root';
  else if (!findCgroup2Mount()) reason = 'no cgroup v2 hierarchy mounted';
  if (reason && process.env.TLSREC_REQUIRE_EBPF === '1') throw new Error(`TLSREC_REQUIRE_EBPF=1 but ${reason}`);
  if (reason) console.warn(`skipping cgroup tests: ${reason}`);
  return reason;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
