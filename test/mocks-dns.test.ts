import { Resolver } from 'node:dns/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { answerQuery, startDnsServer, type DnsServer } from '../src/replay/mocks/dns.js';

vi.setConfig({ testTimeout: 10_000 });

let dns: DnsServer;
let resolver: Resolver;
beforeAll(async () => {
  dns = await startDnsServer({ overrides: new Map([['db.internal', ['10.0.0.7', '10.0.0.8']]]) });
  resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([`127.0.0.1:${dns.port}`]);
});
afterAll(async () => {
  await dns?.close();
});

describe('mock DNS', () => {
  it('answers A queries for any name with 127.0.0.1', async () => {
    expect(await resolver.resolve4('upstream.test')).toEqual(['127.0.0.1']);
    expect(await resolver.resolve4('API.Example.COM', { ttl: true })).toEqual([{ address: '127.0.0.1', ttl: 5 }]);
    expect(dns.queries).toContain('api.example.com');
  });

  it('answers passthrough names with their real addresses', async () => {
    expect(await resolver.resolve4('db.internal')).toEqual(['10.0.0.7', '10.0.0.8']);
  });

  it('answers AAAA and other types with no data', async () => {
    await expect(resolver.resolve6('upstream.test')).rejects.toMatchObject({ code: 'ENODATA' });
    await expect(resolver.resolveMx('upstream.test')).rejects.toMatchObject({ code: 'ENODATA' });
  });

  it('answers FORMERR to a malformed query and ignores non-queries', () => {
    const bad = Buffer.from('1234010000020000000000000000', 'hex');
    expect(answerQuery(bad)!.reply.readUInt16BE(2) & 0xf).toBe(1);
    expect(answerQuery(Buffer.from('12348180', 'hex'))).toBeUndefined();
  });
});
