// How the replay engine reaches the mock side (src/replay/mocks/). The module is imported lazily:
// only runs with mocks enabled need it and the eBPF redirect it brings.

import type { MockSession, MockSessionOptions } from './mocks/index.js';

export type { MockMiss, MockReport, ReceivedCall } from './mocks/index.js';
export type { MockSession, MockSessionOptions };

export type StartMockSession = (opts: MockSessionOptions) => Promise<MockSession>;

export async function loadMockSessionStarter(): Promise<StartMockSession> {
  const mod = await import('./mocks/index.js');
  return mod.startMockSession;
}
