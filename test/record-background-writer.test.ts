// The writer process (src/record/background-writer.ts + writer-process.ts) must write exactly the
// files the in-process TestSetWriter writes: same tests, same mocks.yaml, byte for byte, for the
// exchanges of every real eBPF event recording in fixtures/events/. Also: secrets never reach the
// spool, and nothing of the spool is left behind.
//
// The writer process runs the compiled script (dist/, built by `npm test` before vitest runs).

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readEventFile } from '../src/record/event-file.js';
import type { Exchange } from '../src/record/exchange.js';
import { Reconstructor } from '../src/record/reconstruct.js';
import { BackgroundWriter } from '../src/record/background-writer.js';
import { TestSetWriter } from '../src/format/writer.js';
import { repoRoot } from './helpers/procs.js';

const writerScript = join(repoRoot, 'dist', 'record', 'writer-process-main.js');
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

describe('the writer process writes what TestSetWriter writes', () => {
  const exchanges: Exchange[] = [];
  let dirs: string[] = [];

  beforeAll(async () => {
    expect(existsSync(writerScript), `${writerScript} (run npm run build)`).toBe(true);
    for (const name of readdirSync(eventsDir).filter((n) => n.endsWith('.jsonl')).sort()) {
      const r = new Reconstructor({ onExchange: (ex) => exchanges.push(ex) });
      for await (const ev of readEventFile(join(eventsDir, name))) r.push(ev);
      r.finish();
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

  it('same files, byte for byte, for every exchange of the real recordings; no spool left', async () => {
    expect(exchanges.length).toBeGreaterThan(20);
    expect(exchanges.some((e) => e.role === 'incoming') && exchanges.some((e) => e.role === 'outgoing')).toBe(true);

    const direct = newDir();
    const sync = await TestSetWriter.create({ rootDir: direct, monoToWallNs: MONO_TO_WALL });
    for (const ex of exchanges) sync.writeExchange(ex);
    const syncSummary = await sync.close();

    const viaProcess = newDir();
    const bg = await BackgroundWriter.start({ rootDir: viaProcess, monoToWallNs: MONO_TO_WALL, writerScript });
    exchanges.forEach((ex, i) => {
      bg.writeExchange(ex);
      if (i % 3 === 0) bg.flush(); // batches of different sizes
    });
    const bgSummary = await bg.close();

    expect(bgSummary.lateErrors).toEqual([]);
    expect(bgSummary.notWritten).toBe(0);
    expect({ tests: bgSummary.tests, mocks: bgSummary.mocks }).toEqual({ tests: syncSummary.tests, mocks: syncSummary.mocks });
    const a = tree(direct);
    const b = tree(viaProcess);
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort()); // so no .tlsrec-spool-* either
    for (const [file, bytes] of a) expect(b.get(file)!.equals(bytes), file).toBe(true);
  });

  it('secret header values never reach the spool on disk (redacted before it), and are redacted in the files', async () => {
    const withSecret = exchanges.find((e) => e.request.headers.some(([n]) => n.toLowerCase() === 'authorization'));
    expect(withSecret, 'a fixture exchange with an Authorization header').toBeDefined();
    const secret = withSecret!.request.headers.find(([n]) => n.toLowerCase() === 'authorization')![1];
    expect(secret).not.toBe('[REDACTED]');

    const root = newDir();
    const bg = await BackgroundWriter.start({ rootDir: root, monoToWallNs: MONO_TO_WALL, writerScript });
    bg.writeExchange(withSecret!);
    bg.flush();
    // The spool as the writer process reads it (it may not have run yet, or may have finished).
    const spools = readdirSync(bg.dir).filter((f) => f.startsWith('.tlsrec-spool-'));
    for (const f of spools) expect(readFileSync(join(bg.dir, f), 'latin1')).not.toContain(secret);
    await bg.close();
    const files = tree(root);
    const all = [...files.values()].map((b) => b.toString('latin1')).join('\n');
    expect(all).not.toContain(secret);
    expect(all).toContain('[REDACTED]');
  });
});
