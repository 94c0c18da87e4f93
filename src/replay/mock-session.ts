// The mock server's session API (src/replay/mocks/index.ts, built alongside), restated here so the
// engine compiles and its tests run whether or not that module is present yet. The module is
// loaded lazily: only runs with mocks enabled need it (and the eBPF it brings).

import { EnvironmentError, causeText } from '../errors.js';
import type { Mock } from '../format/types.js';
import type { Cgroup } from '../native/cgroup.js';

export interface MockSessionOptions {
  mocks: Mock[];
  cgroup: Cgroup;
  appPort?: number;
  passthrough: string[];
  tmpDir: string;
}

export interface MockMiss {
  method: string;
  url: string;
  closest?: { mock: string; field: string; detail: string };
}

export interface MockReport {
  served: Array<{ mock: string; method: string; url: string }>;
  misses: MockMiss[];
  unused: string[];
}

export interface MockSession {
  env: Record<string, string>;
  report(): MockReport;
  close(): Promise<void>;
}

export type StartMockSession = (opts: MockSessionOptions) => Promise<MockSession>;

export async function loadMockSessionStarter(): Promise<StartMockSession> {
  // A variable specifier keeps the type checker from requiring the module before it exists.
  const specifier = './mocks/index.js';
  let mod: { startMockSession?: unknown };
  try {
    mod = (await import(specifier)) as { startMockSession?: unknown };
  } catch (err) {
    throw new EnvironmentError(`the mock server could not be loaded: ${causeText(err)}`, {
      code: 'TLSREC_E_MOCKS',
      stage: 'start mocks',
      hint: 'run with --no-mocks to test against real upstreams',
      cause: err,
    });
  }
  if (typeof mod.startMockSession !== 'function') {
    throw new EnvironmentError('the mock server module has no startMockSession()', {
      code: 'TLSREC_E_MOCKS',
      stage: 'start mocks',
      hint: 'run with --no-mocks to test against real upstreams',
    });
  }
  return mod.startMockSession as StartMockSession;
}
