// Cgroup helper on the real cgroup2 hierarchy (root only): stale cgroups of a SIGKILLed tlsrec
// are removed by the next one; live ones are left alone.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { argvInCgroup, Cgroup, findCgroup2Mount } from '../src/native/cgroup.js';
import { processState } from '../src/native/proc.js';
import { needsEbpf } from './helpers/env.js';

const env = needsEbpf();

describe.runIf(env.run)('Cgroup (real cgroup v2, root)', () => {
  it('removes empty cgroups whose tlsrec is gone, keeps those of a live process', async () => {
    const parent = join(findCgroup2Mount()!, 'tlsrec');
    mkdirSync(parent, { recursive: true });
    const stale = join(parent, 'record-4194399-0'); // above any pid_max: that process cannot exist
    const live = join(parent, `record-${process.pid}-77`);
    mkdirSync(stale);
    mkdirSync(live);
    try {
      const cg = Cgroup.create('probe');
      expect(existsSync(stale)).toBe(false);
      expect(existsSync(live)).toBe(true);
      expect(cg.path.startsWith(join(parent, `probe-${process.pid}-`))).toBe(true);
      expect(await cg.destroy()).toBe(true);
      expect(existsSync(cg.path)).toBe(false);
    } finally {
      for (const d of [stale, live]) if (existsSync(d)) rmdirSync(d);
    }
  });

  it('terminate(): SIGTERM ends the processes that heed it at once, SIGKILL the rest after the grace period', async () => {
    const cg = Cgroup.create('terminate');
    const started = (command: string[]) => {
      const argv = argvInCgroup(cg, command);
      return spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
    };
    try {
      const polite = started(['sleep', '30']);
      for (let i = 0; i < 500 && cg.pids().length < 1; i++) await new Promise((r) => setTimeout(r, 10));
      const politeExit = new Promise((r) => polite.once('exit', (_code, signal) => r(signal)));
      expect(await cg.terminate(5_000)).toBe(true);
      expect(await politeExit).toBe('SIGTERM');

      // A shell that ignores SIGTERM (and its sleep child, which inherits that).
      const stubborn = started(['/bin/sh', '-c', "trap '' TERM; sleep 30; true"]);
      for (let i = 0; i < 500 && cg.pids().length < 2; i++) await new Promise((r) => setTimeout(r, 10));
      expect(cg.pids()).toHaveLength(2);
      const stubbornExit = new Promise((r) => stubborn.once('exit', (_code, signal) => r(signal)));
      expect(await cg.terminate(300)).toBe(true);
      expect(await stubbornExit).toBe('SIGKILL');
      expect(cg.pids()).toEqual([]);
    } finally {
      expect(await cg.destroy()).toBe(true);
    }
  });

  it('freezes and thaws its processes (the kernel confirms in cgroup.events)', async () => {
    const cg = Cgroup.create('freeze');
    const argv = argvInCgroup(cg, ['sleep', '30']);
    const child = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
    const frozen = () => /^frozen 1$/m.test(readFileSync(join(cg.path, 'cgroup.events'), 'utf8'));
    const until = async (want: boolean) => {
      for (let i = 0; i < 100 && frozen() !== want; i++) await new Promise((r) => setTimeout(r, 10));
      return frozen();
    };
    try {
      for (let i = 0; i < 100 && cg.pids().length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(cg.pids()).toHaveLength(1);
      expect(cg.setFrozen(true)).toBe(true);
      expect(await until(true)).toBe(true);
      expect(cg.setFrozen(false)).toBe(true);
      expect(await until(false)).toBe(false);
    } finally {
      child.kill('SIGKILL');
      expect(await cg.destroy()).toBe(true);
    }
  });

  it('release(), found again by path, thaws the cgroup and continues exactly its stopped processes', async () => {
    const cg = Cgroup.create('release');
    const children = [0, 1].map(() => {
      const argv = argvInCgroup(cg, ['sleep', '30']);
      return spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
    });
    const until = async (ok: () => boolean) => {
      for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
      return ok();
    };
    try {
      expect(await until(() => cg.pids().length === 2 && cg.pids().every((p) => processState(p) === 'S'))).toBe(true);
      const [stopped, running] = cg.pids() as [number, number];
      process.kill(stopped, 'SIGSTOP');
      expect(await until(() => processState(stopped) === 'T')).toBe(true);
      expect(cg.setFrozen(true)).toBe(true);
      expect(await until(() => /^frozen 1$/m.test(readFileSync(join(cg.path, 'cgroup.events'), 'utf8')))).toBe(true);

      const again = Cgroup.at(cg.path);
      expect(again.id).toBe(cg.id);
      expect(again.release()).toBe(1);
      expect(await until(() => /^frozen 0$/m.test(readFileSync(join(cg.path, 'cgroup.events'), 'utf8')))).toBe(true);
      expect(await until(() => processState(stopped) === 'S')).toBe(true);
      // The thaw wakes every frozen task, so the running one may be seen in R for a moment; it was
      // never stopped, so it goes back to sleeping (a stopped one would stay in T).
      expect(await until(() => processState(running) === 'S')).toBe(true);
      expect(again.release()).toBe(0); // nothing stopped any more
    } finally {
      for (const c of children) c.kill('SIGKILL');
      expect(await cg.destroy()).toBe(true);
    }
  });
});
