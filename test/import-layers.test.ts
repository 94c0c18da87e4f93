// Imports go one way, down the stages: model <- native <- capture, format <- spool, protocols <-
// record, replay <- commands <- cli.
// Every static and dynamic import in src/**/*.ts is checked against that order, and the module
// graph must have no cycle.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));

/** Plain helpers at the top of src/ that import nothing of the project's stages. */
const SHARED = new Set(['errors.ts', 'format-bytes.ts', 'ip-bytes.ts', 'shell-quote.ts']);

/** Which areas each area may import from (besides itself and the shared helpers). */
const MAY_IMPORT: Record<string, readonly string[]> = {
  model: [],
  shared: ['model'],
  native: ['model'],
  format: ['model'],
  protocols: ['model', 'format'],
  // The recorder's capture side: the kernel's records, through native/.
  capture: ['model', 'native'],
  // The hand-off from the recorder to the file-writer process (segments, cipher, the child's logic).
  spool: ['model', 'native', 'format'],
  record: ['model', 'native', 'format', 'protocols', 'capture', 'spool'],
  replay: ['model', 'native', 'format', 'protocols'],
  // Engines of commands that drive both pipelines (rerecord: a recording driven by replay's sender).
  commands: ['model', 'native', 'capture', 'spool', 'format', 'protocols', 'record', 'replay'],
  cli: ['model', 'native', 'capture', 'spool', 'format', 'protocols', 'record', 'replay', 'commands'],
};

/**
 * HTTP/1 code that still lives in replay/ while other work changes it; the http1 protocol object
 * references it. Neither file imports protocols/, so no cycle comes of it (checked below).
 */
const ALLOWED_EXCEPTIONS = new Set([
  'protocols/http1/index.ts -> replay/compare.ts',
  'protocols/http1/index.ts -> replay/mocks/matcher.ts',
  'protocols/http2/index.ts -> replay/compare.ts',
  'protocols/http2/index.ts -> replay/mocks/matcher.ts',
]);

function areaOf(rel: string): string {
  const top = rel.split('/')[0]!;
  if (top === 'cli.ts') return 'cli';
  if (SHARED.has(top)) return 'shared';
  return top;
}

function sourceFiles(dir: string, rel = ''): string[] {
  return fs.readdirSync(path.join(dir, rel), { withFileTypes: true }).flatMap((e) => {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) return sourceFiles(dir, r);
    return e.name.endsWith('.ts') ? [r] : [];
  });
}

/** Project-relative targets of a file's imports (static, re-exports and dynamic import()). */
function importsOf(rel: string): string[] {
  const text = fs.readFileSync(path.join(SRC, rel), 'utf8');
  const specs = [
    ...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'";]*?\bfrom\s+'([^']+)'|\bimport\(\s*'([^']+)'\s*\)/g),
  ].map((m) => m[1] ?? m[2]!);
  return specs
    .filter((s) => s.startsWith('.'))
    .map((s) => path.posix.normalize(path.posix.join(path.posix.dirname(rel), s)).replace(/\.js$/, '.ts'));
}

const files = sourceFiles(SRC);
const graph = new Map(files.map((f) => [f, importsOf(f)]));

describe('import layers', () => {
  it('finds the source files and their imports', () => {
    expect(files).toContain('record/reconstruct.ts');
    expect(graph.get('record/reconstruct.ts')).toContain('protocols/index.ts');
    expect(graph.get('cli.ts')).toContain('record/record-command.ts'); // a dynamic import
  });

  it('every import resolves to a file in src/', () => {
    const missing = [...graph].flatMap(([f, deps]) => deps.filter((d) => !graph.has(d)).map((d) => `${f} -> ${d}`));
    expect(missing).toEqual([]);
  });

  it('no module imports a stage above its own (model imports nothing; nothing but the CLI imports record/)', () => {
    const upward: string[] = [];
    for (const [f, deps] of graph) {
      const from = areaOf(f);
      for (const d of deps) {
        const to = areaOf(d);
        if (to === from || to === 'shared' || MAY_IMPORT[from]!.includes(to)) continue;
        if (ALLOWED_EXCEPTIONS.has(`${f} -> ${d}`)) continue;
        upward.push(`${f} (${from}) -> ${d} (${to})`);
      }
    }
    expect(upward).toEqual([]);
  });

  it('src/model/ imports nothing from outside src/model/', () => {
    const out = [...graph]
      .filter(([f]) => f.startsWith('model/'))
      .flatMap(([f, deps]) => deps.filter((d) => !d.startsWith('model/')).map((d) => `${f} -> ${d}`));
    expect(out).toEqual([]);
  });

  it('the module graph has no cycle', () => {
    const state = new Map<string, 'visiting' | 'done'>();
    const cycles: string[] = [];
    const visit = (f: string, trail: string[]): void => {
      if (state.get(f) === 'done') return;
      if (state.get(f) === 'visiting') {
        cycles.push([...trail.slice(trail.indexOf(f)), f].join(' -> '));
        return;
      }
      state.set(f, 'visiting');
      for (const d of graph.get(f) ?? []) visit(d, [...trail, f]);
      state.set(f, 'done');
    };
    for (const f of files) visit(f, []);
    expect(cycles).toEqual([]);
  });
});
