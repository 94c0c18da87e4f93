import { describe, expect, it } from 'vitest';
import { UsageError } from '../src/errors.js';
import { resolvePassthrough } from '../src/replay/mocks/index.js';

describe('resolvePassthrough', () => {
  it('turns addresses, names and CIDRs into redirect rules', async () => {
    const r = await resolvePassthrough(['127.0.0.1:5432', '10.1.2.3', '10.0.0.0/8', 'localhost:6379']);
    expect(r.rules).toEqual([
      { ip: '127.0.0.1', port: 5432 },
      { ip: '10.1.2.3', port: 0 },
      { cidr: '10.0.0.0/8' },
      { ip: '127.0.0.1', port: 6379 },
    ]);
    expect(r.dnsOverrides.get('localhost')).toEqual(['127.0.0.1']);
  });

  it('rejects what it cannot honour, naming the entry', async () => {
    await expect(resolvePassthrough(['[::1]:80'])).rejects.toThrow(UsageError);
    await expect(resolvePassthrough(['10.0.0.0/33'])).rejects.toThrow(/passthrough entry "10.0.0.0\/33"/);
    await expect(resolvePassthrough(['h:99999'])).rejects.toThrow(/is not "host:port"/);
  });
});
