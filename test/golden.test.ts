// Golden files: every recorded event stream in fixtures/events/ goes through reconstruction and the
// writer, and the files written (tests/test-N.yaml, mocks.yaml) plus the reconstruction summary
// must equal, byte for byte, what is committed under test/golden/<fixture>/. A refactor that is
// meant to change nothing proves it here.
//
// The goldens change only on purpose: `UPDATE_GOLDEN=1 npx vitest run test/golden.test.ts`
// rewrites them from the current code, and the diff is reviewed and committed with the change.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { TestSetWriter } from '../src/format/test-set-writer.js';
import { readEventFile } from '../src/record/event-file.js';
import { Reconstructor } from '../src/record/reconstruct.js';
import { exchangeDocs } from '../src/protocols/files.js';

const EVENTS_DIR = fileURLToPath(new URL('../fixtures/events/', import.meta.url));
const GOLDEN_DIR = fileURLToPath(new URL('./golden/', import.meta.url));
const UPDATE = process.env.UPDATE_GOLDEN === '1';
/** Fixed clock offset, so the timestamps written are the same on every machine. */
const MONO_TO_WALL = BigInt(Date.UTC(2024, 0, 1)) * 1_000_000n;
/** The summary file beside the YAML files: counts and skipped streams of the reconstruction. */
const SUMMARY_FILE = 'reconstruct-summary.json';

const fixtures = fs
  .readdirSync(EVENTS_DIR)
  .filter((f) => f.endsWith('.jsonl'))
  .sort();
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsrec-golden-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

/** Every file under `dir`, as paths relative to it, sorted. */
function listFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) walk(r);
      else out.push(r);
    }
  };
  walk('');
  return out.sort();
}

/** Reconstructs and writes one fixture into a fresh test set; returns that set's directory. */
async function produce(fixture: string): Promise<string> {
  const rootDir = path.join(tmpRoot, fixture);
  const writer = await TestSetWriter.create(
    { rootDir, testSet: 'test-set-0', monoToWallNs: MONO_TO_WALL },
    exchangeDocs(),
  );
  const reconstructor = new Reconstructor({ onExchange: (ex) => writer.writeExchange(ex) });
  for await (const ev of readEventFile(path.join(EVENTS_DIR, fixture))) reconstructor.push(ev);
  const stats = reconstructor.finish();
  await writer.close();
  fs.writeFileSync(path.join(writer.dir, SUMMARY_FILE), JSON.stringify(stats, null, 2) + '\n');
  return writer.dir;
}

describe('golden files: recorded event streams -> the same tests and mocks, byte for byte', () => {
  it('has event-stream fixtures to check', () => {
    expect(fixtures.length).toBeGreaterThan(5);
  });

  for (const fixture of fixtures) {
    it(fixture, async () => {
      const produced = await produce(fixture);
      const golden = path.join(GOLDEN_DIR, fixture.replace(/\.jsonl$/, ''));
      if (UPDATE) {
        fs.rmSync(golden, { recursive: true, force: true });
        fs.cpSync(produced, golden, { recursive: true });
      }
      const files = listFiles(produced);
      expect(files, `files written for ${fixture} (UPDATE_GOLDEN=1 rewrites the goldens)`).toEqual(listFiles(golden));
      for (const f of files) {
        const actual = fs.readFileSync(path.join(produced, f), 'utf8');
        const expected = fs.readFileSync(path.join(golden, f), 'utf8');
        expect(actual, `${fixture}: ${f} differs from test/golden (UPDATE_GOLDEN=1 rewrites it)`).toBe(expected);
      }
    });
  }
});
