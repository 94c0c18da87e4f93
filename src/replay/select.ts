// Which tests a run replays: `--test` (names or globs, repeatable), `--grep` (a regex on
// "METHOD url") and `--shard k/n`. Pure: sets in, sets out, and a usage error when a choice
// selects nothing.
//
// Sharding assigns each test by a hash of "set/test-name" (sha256, first 32 bits, modulo n), not
// by its position: the shards are disjoint and together complete for any n, and adding, removing
// or renaming a test moves no other test to another shard. A set's mocks stay whole: a selected
// test is served every mock its set recorded. A shard that happens to receive no test is not an
// error (a small suite over many CI jobs); a --test or --grep that matches nothing is.

import { createHash } from 'node:crypto';
import { UsageError } from '../errors.js';
import type { LoadedDoc } from '../format/protocol-docs.js';
import type { TestCase, TestSet } from '../format/types.js';
import { requestPath } from './sender.js';

export interface Shard {
  /** 1-based. */
  index: number;
  count: number;
}

export interface TestSelection {
  /** Test names or globs (`*`, `?`, `[abc]`); a pattern with a `/` is matched against "set/test". */
  tests?: string[];
  /** A regular expression searched in "METHOD /path?query" and in "METHOD recorded-url". */
  grep?: string;
  shard?: Shard;
}

export interface SelectionResult {
  /** The sets that keep at least one test, each with only its selected tests (mocks whole). */
  sets: TestSet[];
  /** Tests selected, and tests in the sets that were looked at. */
  selected: number;
  total: number;
  /** What was asked, e.g. `--test "test-1*" --shard 1/2`; empty when nothing was. */
  description: string;
}

/** The 1-based shard of a test among `count` shards. */
export function shardOf(setName: string, testName: string, count: number): number {
  const digest = createHash('sha256').update(`${setName}/${testName}`).digest();
  return (digest.readUInt32BE(0) % count) + 1;
}

/** A glob as a whole-string regex: `*` and `?` stop at `/`, `**` does not, `[...]` / `[!...]` are classes. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i]!;
    if (ch === '*') {
      if (glob[i + 1] === '*') {
        re += '.*';
        i++;
      } else re += '[^/]*';
    } else if (ch === '?') {
      re += '[^/]';
    } else if (ch === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end < 0) {
        re += '\\[';
        continue;
      }
      let body = glob.slice(i + 1, end);
      const negate = body.startsWith('!') || body.startsWith('^');
      if (negate) body = body.slice(1);
      re += `[${negate ? '^' : ''}${body.replace(/[\\\]]/g, '\\$&')}]`;
      i = end;
    } else {
      re += ch.replace(/[.+^${}()|\\]/g, '\\$&');
    }
  }
  return new RegExp(`^${re}$`);
}

/** "METHOD /path?query" and "METHOD url-as-recorded": what --grep searches. */
export function grepTargets(test: TestCase): string[] {
  const method = test.request.method.toUpperCase();
  const path = requestPath(test.request.url);
  return test.request.url === path ? [`${method} ${path}`] : [`${method} ${path}`, `${method} ${test.request.url}`];
}

function describeSelection(sel: TestSelection): string {
  const parts: string[] = [];
  for (const t of sel.tests ?? []) parts.push(`--test ${JSON.stringify(t)}`);
  if (sel.grep !== undefined) parts.push(`--grep ${JSON.stringify(sel.grep)}`);
  if (sel.shard) parts.push(`--shard ${sel.shard.index}/${sel.shard.count}`);
  return parts.join(' ');
}

function listNames(names: string[], max = 10): string {
  if (names.length === 0) return '(none)';
  return names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')}, … (${names.length} in all)`;
}

/** Apply a selection to loaded sets, in their order and in each set's test order. */
export function selectTests(sets: TestSet[], sel: TestSelection): SelectionResult {
  const countOf = (s: TestSet): number => s.tests.length + (s.protocolTests?.length ?? 0);
  const total = sets.reduce((n, s) => n + countOf(s), 0);
  const description = describeSelection(sel);
  const patterns = (sel.tests ?? []).map((p) => ({ text: p, re: globToRegExp(p), byPath: p.includes('/'), hits: 0 }));
  let grep: RegExp | undefined;
  if (sel.grep !== undefined) {
    try {
      grep = new RegExp(sel.grep);
    } catch (err) {
      const why = err instanceof Error ? err.message.replace(/^Invalid regular expression: /, '') : String(err);
      throw new UsageError(`--grep ${JSON.stringify(sel.grep)}: not a valid regular expression: ${why}`, {
        stage: 'select tests',
      });
    }
  }
  if (patterns.length === 0 && grep === undefined && sel.shard === undefined) {
    return { sets, selected: total, total, description };
  }

  // Name and grep first (the user's choice), then the shard (the CI split of that choice).
  const chosen = sets.map((set) => {
    const wanted = (t: TestCase | LoadedDoc): boolean => {
      if (patterns.length > 0) {
        let any = false;
        for (const p of patterns) {
          if (p.re.test(p.byPath ? `${set.name}/${t.name}` : t.name)) {
            p.hits++;
            any = true;
          }
        }
        if (!any) return false;
      }
      // Other protocols' tests are searched as "KIND name".
      const targets = 'protocol' in t ? [`${t.kind} ${t.name}`] : grepTargets(t);
      return grep === undefined || targets.some((s) => grep.test(s));
    };
    return { set, tests: set.tests.filter(wanted), protocolTests: (set.protocolTests ?? []).filter(wanted) };
  });
  const where = `${sets.length} test set${sets.length === 1 ? '' : 's'} (${listNames(sets.map((s) => s.name))}), ${total} test${total === 1 ? '' : 's'}`;
  const unmatched = patterns.filter((p) => p.hits === 0);
  if (unmatched.length > 0) {
    throw new UsageError(
      `no test matches ${unmatched.map((p) => `--test ${JSON.stringify(p.text)}`).join(', ')} in ${where}`,
      {
        stage: 'select tests',
        hint: `test names: ${listNames([...new Set(sets.flatMap((s) => s.tests.map((t) => t.name)))])}; a pattern with a "/" is matched against "set/test"`,
      },
    );
  }
  const matched = chosen.reduce((n, c) => n + c.tests.length + c.protocolTests.length, 0);
  if (matched === 0) {
    throw new UsageError(`no test matches ${describeSelection({ ...sel, shard: undefined })} in ${where}`, {
      stage: 'select tests',
      hint: '--grep searches "METHOD /path?query", e.g. --grep "^POST /orders"',
    });
  }
  const shard = sel.shard;
  const out: TestSet[] = [];
  let selected = 0;
  for (const { set, tests, protocolTests } of chosen) {
    const inShard = (t: { name: string }): boolean => !shard || shardOf(set.name, t.name, shard.count) === shard.index;
    const kept = tests.filter(inShard);
    const keptOthers = protocolTests.filter(inShard);
    if (kept.length + keptOthers.length === 0) continue;
    selected += kept.length + keptOthers.length;
    if (kept.length + keptOthers.length === countOf(set)) out.push(set);
    else {
      const { protocolTests: _all, ...rest } = set;
      out.push(keptOthers.length > 0 ? { ...rest, tests: kept, protocolTests: keptOthers } : { ...rest, tests: kept });
    }
  }
  return { sets: out, selected, total, description };
}
