// Starts fixtures/upstream/h2c-upgrade-server.mjs (a cleartext HTTP/2 server that accepts
// `Upgrade: h2c`, for curl --http2 on an http:// URL) as a child process.

import { join } from 'node:path';
import { repoRoot, start, waitForOutput } from './procs.js';

export const h2cUpgradeServerScript = join(repoRoot, 'fixtures', 'upstream', 'h2c-upgrade-server.mjs');

export interface H2cUpgradeServer {
  port: number;
  close(): Promise<void>;
}

export async function startH2cUpgradeServer(host = '127.0.0.1'): Promise<H2cUpgradeServer> {
  const p = start('node', [h2cUpgradeServerScript, '--host', host]);
  const port = Number((await waitForOutput(p, /h2c-upgrade listening (\d+)/))[1]);
  return {
    port,
    close: async () => {
      p.child.kill('SIGTERM');
      await p.exited;
    },
  };
}
