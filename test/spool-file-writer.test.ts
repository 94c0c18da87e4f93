// The file-writer process (src/spool/spooler.ts + file-writer-process.ts) must write exactly the
// files that reconstructing in-process and writing with TestSetWriter give: same tests, same
// mocks.yaml, byte for byte, and the same reconstruction summary, for every real eBPF event
// recording in fixtures/events/. Also: nothing of the plaintext reaches the spool, secrets are
// redacted in the files, and nothing of the spool is left behind.
//
// The file-writer process runs the compiled script (dist/, built by `npm test` before vitest runs).

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readEventFile } from '../src/record/event-file.js';
import type { CaptureEvent } from '../src/model/events.js';
import type { HttpExchange as Exchange } from '../src/model/exchange.js';
import { Reconstructor, type ReconstructStats } from '../src/record/reconstruct.js';
import { Spooler } from '../src/spool/spooler.js';
import { exchangeDocs } from '../src/protocols/files.js';
import { TestSetWriter } from '../src/format/test-set-writer.js';
import { repoRoot } from './helpers/procs.js';
import { encodeRecords } from './helpers/ring-records.js';

const fileWriterScript = join(repoRoot, 'dist', 'record', 'file-writer-main.js');
const eventsDir = join(repoRoot, 'fixtures', 'events');
const MONO_TO_WALL = 1_732_000_000_000_000_000n; // fixed, so both writers render the same timestamps

/** Every file under dir (relative path -> contents), schema copies included. */
function tree(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (rel: string): void => {
    for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(r);
      else out.set(r, readFileSync(join(dir, r)));
    }
  };
  walk('');
  return out;
}

interface Recording {
  name: string;
  events: CaptureEvent[];
  exchanges: Exchange[];
  stats: ReconstructStats;
}

describe('the file-writer process writes what reconstruction and TestSetWriter write in-process', () => {
  const recordings: Recording[] = [];
  let dirs: string[] = [];

  beforeAll(async () => {
    expect(existsSync(fileWriterScript), `${fileWriterScript} (run npm run build)`).toBe(true);
    for (const name of readdirSync(eventsDir)
      .filter((n) => n.endsWith('.jsonl'))
      .sort()) {
      const events: CaptureEvent[] = [];
      const exchanges: Exchange[] = [];
      for await (const ev of readEventFile(join(eventsDir, name))) events.push(ev);
      const r = new Reconstructor({ onExchange: (ex) => exchanges.push(ex as Exchange) });
      for (const ev of events) r.push(ev);
      recordings.push({ name, events, exchanges, stats: r.finish() });
    }
  });

  afterEach(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    dirs = [];
  });

  const newDir = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'tlsrec-bgw-'));
    dirs.push(d);
    return d;
  };

  it('same files, byte for byte, and the same summary, for every real recording; no spool left', async () => {
    const all = recordings.flatMap((r) => r.exchanges);
    expect(all.length).toBeGreaterThan(20);
    expect(all.some((e) => e.role === 'incoming') && all.some((e) => e.role === 'outgoing')).toBe(true);

    const direct = newDir();
    const viaProcess = newDir();
    for (const rec of recordings) {
      // One test set per recording, in the same order in both roots (test-set-0, -1, ...).
      const sync = await TestSetWriter.create({ rootDir: direct, monoToWallNs: MONO_TO_WALL }, exchangeDocs());
      for (const ex of rec.exchanges) sync.writeExchange(ex);
      const syncSummary = await sync.close();

      const bg = await Spooler.start({ rootDir: viaProcess, monoToWallNs: MONO_TO_WALL, fileWriterScript });
      for (let i = 0; i < rec.events.length; i += 7) {
        bg.writeRecords(encodeRecords(rec.events.slice(i, i + 7)));
        if (i % 21 === 0) bg.flush(); // frames of different sizes
      }
      const bgSummary = await bg.close();

      expect(bgSummary.lateErrors, rec.name).toEqual([]);
      expect(bgSummary.notWritten + bgSummary.notWrittenBytes).toBe(0);
      expect({ tests: bgSummary.tests, mocks: bgSummary.mocks }, rec.name).toEqual({
        tests: syncSummary.tests,
        mocks: syncSummary.mocks,
      });
      expect(bgSummary.stats, rec.name).toEqual(rec.stats);
      if (rec.exchanges.some((e) => e.role === 'incoming')) expect(bgSummary.appPort, rec.name).toBeGreaterThan(0);
    }
    const a = tree(direct);
    const b = tree(viaProcess);
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort()); // so no .tlsrec-spool-* either
    for (const [file, bytes] of a) expect(b.get(file)!.equals(bytes), file).toBe(true);
  });

  it('the spool on disk holds no plaintext (it is encrypted); secrets are redacted in the files', async () => {
    const rec = recordings.find((r) =>
      r.exchanges.some((e) => e.request.headers.some(([n]) => n.toLowerCase() === 'authorization')),
    );
    expect(rec, 'a fixture recording with an Authorization header').toBeDefined();
    const withSecret = rec!.exchanges.find((e) =>
      e.request.headers.some(([n]) => n.toLowerCase() === 'authorization'),
    )!;
    const secret = withSecret.request.headers.find(([n]) => n.toLowerCase() === 'authorization')![1];
    expect(secret).not.toBe('[REDACTED]');

    const root = newDir();
    const bg = await Spooler.start({ rootDir: root, monoToWallNs: MONO_TO_WALL, fileWriterScript });
    process.kill(bg.pid!, 'SIGSTOP'); // so that the spool is still there to be read
    bg.writeRecords(encodeRecords(rec!.events));
    bg.flush();
    const spools = readdirSync(bg.dir).filter((f) => f.startsWith('.tlsrec-spool-'));
    const onDisk = spools.map((f) => readFileSync(join(bg.dir, f), 'latin1')).join('');
    process.kill(bg.pid!, 'SIGCONT');
    const captured = rec!.events.reduce((n, ev) => n + (ev.type === 'data' ? ev.data.length : 0), 0);
    expect(onDisk.length).toBeGreaterThan(captured); // all of it is there, encrypted
    expect(onDisk).not.toContain(secret);
    expect(onDisk).not.toContain('HTTP/1.1');
    await bg.close();
    const files = tree(root);
    const text = [...files.values()].map((b) => b.toString('latin1')).join('\n');
    expect(text).not.toContain(secret);
    expect(text).toContain('{{ .secret.AUTHORIZATION }}');
  });

  it('the redaction options reach the file-writer process: extra header names, and redaction off', async () => {
    const rec = recordings.find((r) =>
      r.exchanges.some((e) => e.request.headers.some(([n]) => n.toLowerCase() === 'authorization')),
    )!;
    const secret = rec.exchanges
      .flatMap((e) => e.request.headers)
      .find(([n]) => n.toLowerCase() === 'authorization')![1];
    const written = async (opts: { redact?: boolean; redactHeaders?: string[] }): Promise<string> => {
      const root = newDir();
      const bg = await Spooler.start({ rootDir: root, monoToWallNs: MONO_TO_WALL, fileWriterScript, ...opts });
      bg.writeRecords(encodeRecords(rec.events));
      expect((await bg.close()).lateErrors).toEqual([]);
      return [...tree(root).values()].map((b) => b.toString('latin1')).join('\n');
    };
    const byDefault = await written({});
    expect(byDefault).toMatch(/Connection: keep-alive/);
    expect(byDefault).not.toContain(secret);
    const extra = await written({ redactHeaders: ['CONNECTION'] });
    expect(extra).not.toMatch(/Connection: keep-alive/);
    expect(extra).toMatch(/Connection: "\{\{ \.secret\.CONNECTION \}\}"/);
    expect(extra).not.toContain(secret);
    const off = await written({ redact: false });
    expect(off).toContain(secret);
  });
});
