// Terminal reporter: one line per test as it finishes, then every failure with its messages and
// body diff, mock misses with the closest mock, unused mocks as info, and the summary line
// "N passed, N failed" last (CI reads it). Colors only on a TTY and never when NO_COLOR is set.

import type { MockMissInfo, RunReport, SetReport, TestReport } from './model.js';
import { summaryLine } from './model.js';

export interface TerminalReporterOptions {
  /** Force colors on or off; default: on a TTY without NO_COLOR. */
  color?: boolean;
  env?: NodeJS.ProcessEnv;
}

type Paint = (s: string) => string;

export function useColor(out: NodeJS.WritableStream, env: NodeJS.ProcessEnv = process.env): boolean {
  // https://no-color.org: any non-empty NO_COLOR disables color.
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  return (out as { isTTY?: boolean }).isTTY === true;
}

export class TerminalReporter {
  private readonly red: Paint;
  private readonly green: Paint;
  private readonly yellow: Paint;
  private readonly dim: Paint;
  private readonly bold: Paint;

  constructor(
    private readonly out: NodeJS.WritableStream,
    opts: TerminalReporterOptions = {},
  ) {
    const on = opts.color ?? useColor(out, opts.env);
    const sgr = (open: number, close: number): Paint => (on ? (s) => `\x1b[${open}m${s}\x1b[${close}m` : (s) => s);
    this.red = sgr(31, 39);
    this.green = sgr(32, 39);
    this.yellow = sgr(33, 39);
    this.dim = sgr(2, 22);
    this.bold = sgr(1, 22);
  }

  private line(s = ''): void {
    this.out.write(`${s}\n`);
  }

  setStart(name: string, tests: number, what: string): void {
    this.line(`${this.bold(name)} ${this.dim(`(${tests} test${tests === 1 ? '' : 's'}, ${what})`)}`);
  }

  testDone(t: TestReport): void {
    const mark = t.passed ? this.green('✓') : this.red('✗');
    const misses =
      t.mockMisses.length > 0
        ? this.yellow(`  ${t.mockMisses.length} mock miss${t.mockMisses.length === 1 ? '' : 'es'}`)
        : '';
    this.line(`  ${mark} ${t.name}  ${t.method} ${t.url}  ${this.dim(`${Math.round(t.durationMs)} ms`)}${misses}`);
  }

  note(s: string): void {
    this.line(`  ${this.yellow('!')} ${s}`);
  }

  private miss(m: MockMissInfo, indent: string): void {
    this.line(`${indent}${this.yellow('mock miss')}: ${m.method} ${m.url}`);
    if (m.closest)
      this.line(`${indent}  closest mock ${m.closest.mock}: ${m.closest.field} differs: ${m.closest.detail}`);
    else this.line(`${indent}  no mock for this host and method`);
  }

  finish(run: RunReport, reportFiles: string[] = []): void {
    const failedSets = run.sets.filter((s) => s.tests.some((t) => !t.passed));
    if (failedSets.length > 0) {
      this.line();
      this.line(this.bold(this.red('Failures')));
      for (const set of failedSets) this.setFailures(set);
    }
    for (const set of run.sets) {
      if (!set.mocks) continue;
      const unattributed = set.mocks.misses.filter((m) => !set.tests.some((t) => t.mockMisses.includes(m)));
      if (unattributed.length > 0) {
        this.line();
        this.line(`${set.name}: mock misses outside of any test (app startup or background work):`);
        for (const m of unattributed) this.miss(m, '  ');
      }
      if (set.mocks.unused.length > 0) {
        this.line();
        this.line(
          this.dim(
            `${set.name}: ${set.mocks.unused.length} of ${set.mocks.total} mocks were not used: ${set.mocks.unused.join(', ')}`,
          ),
        );
      }
    }
    this.line();
    if (run.mockMisses > 0)
      this.line(
        this.yellow(
          `${run.mockMisses} mock miss${run.mockMisses === 1 ? '' : 'es'} (calls that no recorded mock answered)`,
        ),
      );
    for (const f of reportFiles) this.line(this.dim(`report: ${f}`));
    const summary = summaryLine(run.passed, run.failed);
    this.line(run.failed > 0 ? this.red(summary) : this.green(summary));
  }

  private setFailures(set: SetReport): void {
    for (const t of set.tests) {
      if (t.passed) continue;
      this.line();
      this.line(`${this.red('✗')} ${this.bold(`${set.name} / ${t.name}`)}  ${t.method} ${t.url}  ${this.dim(t.file)}`);
      for (const f of t.failures) this.line(`    ${f.message}`);
      if (t.diff) {
        for (const l of t.diff.split('\n')) {
          const colored =
            l.startsWith('+') && !l.startsWith('+++')
              ? this.green(l)
              : l.startsWith('-') && !l.startsWith('---')
                ? this.red(l)
                : l.startsWith('@@')
                  ? this.dim(l)
                  : l;
          this.line(`    ${colored}`);
        }
      }
      for (const m of t.mockMisses) this.miss(m, '    ');
    }
    if (set.appOutput) {
      this.line();
      this.line(this.dim(`${set.name}: last output of the app:`));
      for (const l of set.appOutput.split('\n')) this.line(this.dim(`  | ${l}`));
    }
  }
}
