// A mock session for one `tlsrec test` run: the run CA, the mock server (HTTP + TLS on one port),
// the DNS server and the cgroup redirect. The engine creates the app's cgroup, starts a session,
// then starts the app in the cgroup with `env` merged into its environment; close() undoes it all.

import { lookup } from 'node:dns/promises';
import { isIP, isIPv4 } from 'node:net';
import type { LoadedDoc } from '../../format/protocol-docs.js';
import type { Mock } from '../../format/types.js';
import type { Cgroup } from '../../native/cgroup.js';
import { attachRedirect, type PassthroughRule, type Redirect } from '../../native/redirect.js';
import { EnvironmentError, UsageError, causeText } from '../../errors.js';
import { PROTOCOLS } from '../../protocols/index.js';
import type { Protocol } from '../../protocols/protocol.js';
import { createRunCa, type RunCa } from './ca.js';
import { startDnsServer, type DnsServer } from './dns.js';
import { MockMatcher, type MockReport, type ReceivedCall } from './matcher.js';
import { startMockServer, type MockServer } from './server.js';

export type { MockMiss, MockReport, ReceivedCall } from './matcher.js';
export { formatMiss } from './matcher.js';

export interface MockSessionOptions {
  mocks: Mock[];
  /** Mocks of other protocols (TestSet.protocolMocks), served through their protocol's `mocks.serve`. */
  protocolMocks?: LoadedDoc[];
  /** The protocols the mock server hands connections to. Default: the registry. */
  protocols?: readonly Protocol[];
  cgroup: Cgroup;
  appPort?: number;
  /** "127.0.0.1:5432", "db.internal:5432", "10.0.0.0/8", "10.1.2.3" (any port). */
  passthrough: string[];
  /** Parent of the session's private directory (CA bundles), removed at close. */
  tmpDir: string;
  /** Fills in a served response's variables with this run's values (VariableScope). */
  fillResponse?: (response: Mock['response']) => Mock['response'];
}

export interface MockSession {
  /** Variables to merge into the app's environment (CA bundles). */
  env: Record<string, string>;
  report(): MockReport;
  /** Every call the mock server received, in order (what --detect-noise compares between runs). */
  calls?(): ReceivedCall[];
  close(): Promise<void>;
}

export interface ResolvedPassthrough {
  rules: PassthroughRule[];
  /** Names the mock DNS answers with their real IPv4 addresses. */
  dnsOverrides: Map<string, string[]>;
}

/** Turn passthrough entries into BPF rules; host names are resolved now (tlsrec is outside the cgroup). */
export async function resolvePassthrough(entries: string[]): Promise<ResolvedPassthrough> {
  const rules: PassthroughRule[] = [];
  const dnsOverrides = new Map<string, string[]>();
  for (const raw of entries) {
    const entry = raw.trim();
    const bad = (why: string): UsageError =>
      new UsageError(`passthrough entry "${raw}" ${why}`, {
        stage: 'read passthrough',
        hint: 'use IPv4 "address:port", "address", "hostname:port" or an IPv4 CIDR such as "10.0.0.0/8"',
      });
    const cidr = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(entry);
    if (cidr) {
      if (!isIPv4(cidr[1]!) || Number(cidr[2]) > 32) throw bad('is not a valid IPv4 CIDR');
      rules.push({ cidr: entry });
      continue;
    }
    const hp = /^(.+?)(?::(\d+))?$/.exec(entry);
    const host = hp?.[1]?.replace(/^\[|\]$/g, '') ?? '';
    const port = hp?.[2] ? Number(hp[2]) : 0;
    if (!host || port > 65535) throw bad('is not "host:port"');
    if (isIP(host) === 6) throw bad('is IPv6, which passthrough does not support yet');
    if (isIPv4(host)) {
      rules.push({ ip: host, port });
      continue;
    }
    let addrs: string[];
    try {
      addrs = (await lookup(host, { all: true, family: 4 })).map((a) => a.address);
    } catch (err) {
      throw new EnvironmentError(`cannot resolve passthrough host ${host}: ${causeText(err)}`, {
        stage: 'resolve passthrough',
        hint: 'check the name, or list its IPv4 address instead',
        cause: err,
      });
    }
    for (const ip of addrs) rules.push({ ip, port });
    dnsOverrides.set(host.toLowerCase(), [...(dnsOverrides.get(host.toLowerCase()) ?? []), ...addrs]);
  }
  return { rules, dnsOverrides };
}

export async function startMockSession(opts: MockSessionOptions): Promise<MockSession> {
  const passthrough = await resolvePassthrough(opts.passthrough);
  let ca: RunCa | undefined;
  let server: MockServer | undefined;
  let dns: DnsServer | undefined;
  let redirect: Redirect | undefined;
  const matcher = new MockMatcher(opts.mocks);

  const close = async (): Promise<void> => {
    // Detach first, so no connection of the app is sent to a server that is going away.
    redirect?.close();
    redirect = undefined;
    await server?.close();
    await dns?.close();
    ca?.close();
  };

  try {
    ca = createRunCa({ tmpDir: opts.tmpDir, hosts: opts.mocks.map((m) => m.request.host) });
    server = await startMockServer({
      matcher,
      ca,
      protocols: opts.protocols ?? PROTOCOLS,
      protocolMocks: opts.protocolMocks ?? [],
      ...(opts.fillResponse ? { fillResponse: opts.fillResponse } : {}),
    });
    dns = await startDnsServer({ overrides: passthrough.dnsOverrides });
    redirect = attachRedirect({
      cgroupPath: opts.cgroup.path,
      mockPort: server.port,
      dnsPort: dns.port,
      ...(opts.appPort ? { appPort: opts.appPort } : {}),
      passthrough: passthrough.rules,
    });
  } catch (err) {
    await close();
    throw err;
  }

  let closing: Promise<void> | undefined;
  return {
    env: ca.appEnv(process.env),
    report: () => {
      const r = matcher.report();
      return { ...r, unused: [...r.unused, ...(server?.unusedProtocolMocks() ?? [])] };
    },
    calls: () => matcher.receivedCalls(),
    close: () => (closing ??= close()),
  };
}
