// A recording can stop anywhere (crash, kill, full disk): what is on disk must still load.
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OutputError } from '../src/errors.js';
import { loadTestSets } from '../src/format/reader.js';
import { TestSetWriter } from '../src/format/test-set-writer.js';
import { makeExchange } from './fixtures-format/make-exchange.js';

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsrec-crash-'));
});
afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

const incoming = (i: number) =>
  makeExchange({ target: `/t/${i}`, resHeaders: [['Content-Type', 'application/json']], resBody: `{"i":${i}}` });
const outgoing = (i: number) => makeExchange({ role: 'outgoing', target: `/m/${i}`, resBody: 'x'.repeat(1000 + i) });

function thrown(fn: () => void): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('crash safety', () => {
  it('a writer stopped midway (never closed) leaves files that load', async () => {
    const w = await TestSetWriter.create({ rootDir: root });
    for (let i = 0; i < 25; i++) {
      w.writeExchange(incoming(i));
      w.writeExchange(outgoing(i));
    }
    // crash here: no close(); plus a temp file left by a crash between write and rename
    fs.writeFileSync(path.join(w.dir, 'tests', '.test-26.yaml.tmp-4242'), 'version: api.keploy.io/v1beta1\nkind: Ht');
    const [set] = loadTestSets(root);
    expect(set!.tests).toHaveLength(25);
    expect(set!.mocks).toHaveLength(25);
    expect(set!.mocks[24]!.response.body.bytes.length).toBe(1024);
  });

  it('a mock write failing halfway through a document is cut back; the writer goes on and counts it', async () => {
    const w = await TestSetWriter.create({ rootDir: root });
    w.writeExchange(outgoing(0));
    w.writeExchange(outgoing(1));
    const realWriteSync = fs.writeSync;
    let calls = 0;
    // Simulated full disk: half of the document reaches the file, then ENOSPC.
    (fs as { writeSync: unknown }).writeSync = (fd: number, buf: Buffer, off = 0, len = buf.length - off): number => {
      calls++;
      if (calls === 1) return realWriteSync(fd, buf, off, Math.floor(len / 2));
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    };
    syncBuiltinESMExports();
    let err: unknown;
    try {
      err = thrown(() => w.writeExchange(outgoing(2)));
    } finally {
      (fs as { writeSync: unknown }).writeSync = realWriteSync;
      syncBuiltinESMExports();
    }
    expect(calls).toBe(2);
    expect(err).toBeInstanceOf(OutputError);
    const e = err as OutputError;
    expect(e.message).toBe(
      `could not write mock in ${path.join(w.dir, 'mocks.yaml')}: ENOSPC: no space left on device, write`,
    );
    expect(e.hint).toBe('free some disk space and record again');
    expect(loadTestSets(root)[0]!.mocks.map((m) => m.name)).toEqual(['mock-0', 'mock-1']);

    w.writeExchange(outgoing(3));
    expect(await w.close()).toEqual({ tests: 0, mocks: 3, failedTests: 0, failedMocks: 1 });
    expect(loadTestSets(root)[0]!.mocks.map((m) => m.name)).toEqual(['mock-0', 'mock-1', 'mock-2']);
  });

  it('a real ENOSPC (/dev/full) on mocks.yaml is an OutputError naming the file', async () => {
    if (!fs.existsSync('/dev/full')) return;
    const w = await TestSetWriter.create({ rootDir: root, testSet: 'full' });
    fs.symlinkSync('/dev/full', path.join(w.dir, 'mocks.yaml'));
    const err = thrown(() => w.writeExchange(outgoing(0)));
    expect(err).toBeInstanceOf(OutputError);
    expect((err as OutputError).message).toMatch(/^could not write mock in .*full\/mocks\.yaml: ENOSPC/);
    w.writeExchange(incoming(1)); // tests still get written
    expect(await w.close()).toEqual({ tests: 1, mocks: 0, failedTests: 0, failedMocks: 1 });
  });

  it('a test that cannot be written is an OutputError; numbering has no gap afterwards', async () => {
    const w = await TestSetWriter.create({ rootDir: root });
    w.writeExchange(incoming(1));
    const testsDir = path.join(w.dir, 'tests');
    fs.renameSync(testsDir, testsDir + '.away');
    fs.writeFileSync(testsDir, 'not a directory');
    const err = thrown(() => w.writeExchange(incoming(2)));
    expect(err).toBeInstanceOf(OutputError);
    expect((err as OutputError).message).toContain(`could not write test ${path.join(testsDir, 'test-2.yaml')}`);
    fs.rmSync(testsDir);
    fs.renameSync(testsDir + '.away', testsDir);
    w.writeExchange(incoming(3));
    expect(await w.close()).toEqual({ tests: 2, mocks: 0, failedTests: 1, failedMocks: 0 });
    expect(loadTestSets(root)[0]!.tests.map((t) => [t.name, t.request.url])).toEqual([
      ['test-1', 'http://localhost:3000/t/1'],
      ['test-2', 'http://localhost:3000/t/3'],
    ]);
  });
});
