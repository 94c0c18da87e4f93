// Problems gathered while reading tlsrec's files (config, tests, mocks), thrown together as one
// InputFileError whose lines read `file:line:column: what was found, what was expected`.

import * as fs from 'node:fs';
import type { Document, LineCounter } from 'yaml';
import { InputFileError } from '../errors.js';
import { parseNoise } from './noise.js';
import type { NoiseRule } from './types.js';
import { formatProblem, positionOf, type Problem, type YamlPath } from './validate.js';

/** Problems gathered while reading; positions are resolved against the current document. */
export class Collector {
  readonly problems: Problem[] = [];
  add(p: Problem): void {
    this.problems.push(p);
  }
  at(file: string, doc: Document.Parsed, lc: LineCounter, p: YamlPath, message: string, atKey = false): void {
    const { line, col } = positionOf(doc, lc, p, atKey);
    this.problems.push({ file, line, col, message });
  }
  whole(file: string, message: string): void {
    this.problems.push({ file, line: 1, col: 1, message });
  }
}

export function throwIfProblems(c: Collector, what: string, stage: string): void {
  if (c.problems.length === 0) return;
  // Files in the order they were read, each file's problems top to bottom.
  const fileOrder = new Map<string, number>();
  c.problems.forEach((p) => {
    if (!fileOrder.has(p.file)) fileOrder.set(p.file, fileOrder.size);
  });
  const sorted = [...c.problems].sort(
    (a, b) => fileOrder.get(a.file)! - fileOrder.get(b.file)! || a.line - b.line || a.col - b.col,
  );
  const lines = sorted.map(formatProblem);
  const n = lines.length;
  throw new InputFileError(`${what}: ${n} problem${n === 1 ? '' : 's'}\n${lines.join('\n')}`, lines, {
    stage,
    hint: 'fix the files listed above (each line is file:line:column)',
  });
}

export function readText(file: string, c: Collector): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    c.whole(file, `cannot read file: ${(err as Error).message}`);
    return undefined;
  }
}

/** A Keploy `noise:` map (values already passed the schema) -> rules; problems reported at their YAML position. */
export function noiseRules(
  noise: unknown,
  where: YamlPath,
  report: (p: YamlPath, m: string, atKey?: boolean) => void,
): NoiseRule[] {
  const entries: Record<string, string[] | null> = {};
  for (const [k, v] of Object.entries(
    noise !== null && typeof noise === 'object' && !Array.isArray(noise) ? noise : {},
  ))
    entries[k] = Array.isArray(v) ? v.map(String) : null;
  const { rules, problems } = parseNoise(entries);
  for (const p of problems) {
    if ('index' in p.at) report([...where, p.at.key, p.at.index], p.message);
    else report([...where, p.at.key], p.message, true);
  }
  return rules;
}
