// Which Redis mock answers a command: the command name (any case) and every argument byte for
// byte, except arguments the mock's noise names (`noise.req: [command.2]`, or a `noise.value`
// regex the recorded argument matches) and redacted ones (`[REDACTED]`: AUTH passwords).
// Identical commands are answered in recorded order — the first unused mock, across all the
// connections of a run (a counter's INCR replies 1, 2, 3 as recorded); once all are used the last
// answers again (`reused`). Inside MULTI, mocks recorded inside a transaction (+QUEUED) go first.

import type { RespValue } from '../../model/redis.js';
import type { LoadedDoc } from '../protocol.js';
import type { RedisMock } from './files.js';
import { redactCommand } from './reconstruct.js';

export interface RedisCall {
  command: readonly Buffer[];
  /** Sent between MULTI and EXEC/DISCARD. */
  inMulti?: boolean;
}

export type RedisMatchOutcome =
  | { kind: 'hit'; mock: LoadedDoc<RedisMock>; reused: boolean }
  | { kind: 'miss'; message: string; closest?: { mock: string; field: string; detail: string } };

const REDACTED = '[REDACTED]';
const MAX_ARG_SHOWN = 60;

/** An argument as shown in messages: bare when plain, JSON-quoted otherwise, long ones cut. */
export function showArg(b: Buffer): string {
  const s = b.toString('utf8');
  const cut = s.length > MAX_ARG_SHOWN ? s.slice(0, MAX_ARG_SHOWN) + '…' : s;
  return /^[\x21-\x7e]+$/.test(cut) && !cut.includes('"') ? cut : JSON.stringify(cut);
}

/** A command as shown in messages ("GET user:1"), at most ~200 characters. */
export function showCommand(command: readonly Buffer[]): string {
  const parts = command.map((a, i) => (i === 0 ? a.toString('latin1').toUpperCase() : showArg(a)));
  let text = parts.join(' ');
  if (text.length > 200) text = text.slice(0, 200) + '…';
  return text;
}

function isQueued(replies: readonly RespValue[]): boolean {
  const r = replies[0];
  return r !== undefined && r.type === 'simple' && r.value === 'QUEUED';
}

export class RedisMockMatcher {
  private readonly used = new Set<LoadedDoc<RedisMock>>();
  private readonly byName = new Map<string, LoadedDoc<RedisMock>[]>();

  constructor(mocks: readonly LoadedDoc<RedisMock>[]) {
    const ordered = [...mocks].sort((a, b) => a.index - b.index);
    for (const m of ordered) {
      const name = m.value.command[0]?.toString('latin1').toUpperCase() ?? '';
      const list = this.byName.get(name);
      if (list) list.push(m);
      else this.byName.set(name, [m]);
    }
  }

  /** Is there a mock for this command name at all? */
  has(name: string): boolean {
    return this.byName.has(name.toUpperCase());
  }

  match(call: RedisCall): RedisMatchOutcome {
    const name = call.command[0]?.toString('latin1').toUpperCase() ?? '';
    const same = this.byName.get(name) ?? [];
    let candidates = same.filter((m) => firstDifference(m.value, call.command) === undefined);
    if (candidates.length > 0) {
      const preferred = candidates.filter((m) => isQueued(m.value.replies) === (call.inMulti ?? false));
      if (preferred.length > 0) candidates = preferred;
      const unused = candidates.find((m) => !this.used.has(m));
      if (unused) {
        this.used.add(unused);
        return { kind: 'hit', mock: unused, reused: false };
      }
      return { kind: 'hit', mock: candidates[candidates.length - 1]!, reused: true };
    }
    const shown = showCommand(redactCommand([...call.command]));
    if (same.length === 0)
      return { kind: 'miss', message: `tlsrec: no mock for ${shown} (no ${name} command was recorded)` };
    // Closest: most arguments equal; ties go to an unused mock, then to the first recorded.
    let best = same[0]!;
    let bestScore = -1;
    for (const m of same) {
      const score = equalArgs(m.value, call.command) * 2 + (this.used.has(m) ? 0 : 1);
      if (score > bestScore) {
        best = m;
        bestScore = score;
      }
    }
    const diff = firstDifference(best.value, call.command)!;
    return {
      kind: 'miss',
      message: `tlsrec: no mock for ${shown}: closest ${best.name} differed at ${diff.field} (${diff.detail})`,
      closest: { mock: best.name, field: diff.field, detail: diff.detail },
    };
  }
}

function argIgnored(m: RedisMock, i: number): boolean {
  const recorded = m.command[i]!;
  if (m.noiseArgs.includes(i)) return true;
  const text = recorded.toString('utf8');
  if (text === REDACTED) return true;
  return m.noiseValues.some((re) => re.test(text));
}

function equalArgs(m: RedisMock, command: readonly Buffer[]): number {
  let n = 0;
  for (let i = 1; i < Math.min(m.command.length, command.length); i++)
    if (argIgnored(m, i) || m.command[i]!.equals(command[i]!)) n++;
  return n;
}

/** Where a call differs from a mock ("command[1]" and what was expected), or undefined when it matches. */
export function firstDifference(
  m: RedisMock,
  command: readonly Buffer[],
): { field: string; detail: string } | undefined {
  for (let i = 1; i < Math.min(m.command.length, command.length); i++) {
    if (argIgnored(m, i) || m.command[i]!.equals(command[i]!)) continue;
    return { field: `command[${i}]`, detail: `expected ${showArg(m.command[i]!)}, got ${showArg(command[i]!)}` };
  }
  if (m.command.length !== command.length) {
    return { field: 'arguments', detail: `expected ${m.command.length - 1} argument(s), got ${command.length - 1}` };
  }
  return undefined;
}
