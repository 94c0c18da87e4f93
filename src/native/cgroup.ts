// cgroup v2 helpers. The recorded command (and the app under test) runs in a cgroup of its own so
// that BPF programs can filter on bpf_get_current_cgroup_id() and so that the whole process tree
// can be stopped at once. Plain file operations: no FFI needed.

import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EnvironmentError, causeText } from '../errors.js';
import { processState } from './proc.js';

/** The cgroup2 mount point, from /proc/mounts ("/sys/fs/cgroup" on most hosts, "/sys/fs/cgroup/unified" on hybrid ones). */
export function findCgroup2Mount(mountsText = readFileSync('/proc/mounts', 'utf8')): string | undefined {
  for (const line of mountsText.split('\n')) {
    const [, mountPoint, fsType] = line.split(' ');
    if (fsType === 'cgroup2' && mountPoint) return mountPoint.replace(/\\040/g, ' ');
  }
  return undefined;
}

export class Cgroup {
  private constructor(
    /** Absolute directory of the cgroup. */
    readonly path: string,
    /** The id BPF sees from bpf_get_current_cgroup_id(): the cgroup directory's inode number. */
    readonly id: bigint,
  ) {}

  /**
   * Make a fresh cgroup `tlsrec/<name>-<pid>-<n>` under the cgroup2 mount.
   * Throws EnvironmentError with what to do when cgroup v2 is missing or not writable.
   */
  static create(name: string): Cgroup {
    const mount = findCgroup2Mount();
    if (!mount) {
      throw new EnvironmentError('no cgroup v2 hierarchy is mounted', {
        code: 'TLSREC_E_NO_CGROUP2',
        stage: 'create cgroup',
        hint: 'mount one: `mount -t cgroup2 none /sys/fs/cgroup` (or boot with systemd.unified_cgroup_hierarchy=1)',
      });
    }
    const parent = join(mount, 'tlsrec');
    let dir = '';
    try {
      mkdirSync(parent, { recursive: true });
      removeStaleCgroups(parent);
      for (let n = 0; ; n++) {
        dir = join(parent, `${name}-${process.pid}-${n}`);
        if (!existsSync(dir)) break;
      }
      mkdirSync(dir);
    } catch (err) {
      throw new EnvironmentError(`cannot create a cgroup under ${parent}: ${causeText(err)}`, {
        code: 'TLSREC_E_CGROUP',
        stage: 'create cgroup',
        hint: 'run as root (tlsrec needs to create a cgroup for the command it runs)',
        cause: err,
      });
    }
    return new Cgroup(dir, BigInt(statSync(dir, { bigint: true }).ino));
  }

  /** The cgroup at `path`, made by another process (the file-writer process gets its recorder's). */
  static at(path: string): Cgroup {
    return new Cgroup(path, BigInt(statSync(path, { bigint: true }).ino));
  }

  /** Move a process into this cgroup (its future children follow). */
  addProcess(pid: number): void {
    writeFileSync(join(this.path, 'cgroup.procs'), `${pid}\n`);
  }

  /** Pids currently in the cgroup. Empty once it has been removed. */
  pids(): number[] {
    try {
      return readFileSync(join(this.path, 'cgroup.procs'), 'utf8')
        .split('\n')
        .filter((s) => s.trim() !== '')
        .map(Number);
    } catch {
      return [];
    }
  }

  /**
   * Send a signal to every process in the cgroup. With SIGKILL it uses cgroup.kill when the kernel
   * has it (5.14+), which also catches processes forked while we iterate.
   */
  signalAll(signal: NodeJS.Signals): void {
    if (signal === 'SIGKILL') {
      try {
        writeFileSync(join(this.path, 'cgroup.kill'), '1');
        return;
      } catch {
        // fall back to one kill per pid
      }
    }
    for (const pid of this.pids()) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
  }

  /** Wait until no process is left, polling; resolves false on timeout. */
  async waitEmpty(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.pids().length > 0) {
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
    return true;
  }

  /**
   * Stop every process of the cgroup: SIGTERM, up to `graceMs` for them to exit, then SIGKILL and
   * up to `killWaitMs` more. Resolves true once the cgroup is empty, false if it never was.
   */
  async terminate(graceMs: number, killWaitMs = 5_000): Promise<boolean> {
    this.signalAll('SIGTERM');
    if (await this.waitEmpty(graceMs)) return true;
    this.signalAll('SIGKILL');
    return this.waitEmpty(killWaitMs);
  }

  /**
   * Freeze (pause) or thaw every process of the cgroup (cgroup v2 cgroup.freeze). Used as
   * backpressure: a paused app produces no traffic while tlsrec catches up. False if the kernel
   * refused (no freezer in this hierarchy).
   */
  setFrozen(frozen: boolean): boolean {
    try {
      writeFileSync(join(this.path, 'cgroup.freeze'), frozen ? '1' : '0');
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Let every process of the cgroup go on: thaw it (backpressure freezes it) and continue each
   * process that is stopped (attach on first map stops them until their files are looked at). For
   * when tlsrec died without doing so itself. Returns how many processes were continued.
   */
  release(): number {
    this.setFrozen(false);
    let continued = 0;
    for (const pid of this.pids()) {
      if (processState(pid) !== 'T') continue; // 't' is a tracer's stop: not ours to end
      try {
        process.kill(pid, 'SIGCONT');
        continued++;
      } catch {
        // already gone
      }
    }
    return continued;
  }

  /** True while any process (including one still exiting) is in the cgroup. */
  populated(): boolean {
    try {
      return /^populated 1$/m.test(readFileSync(join(this.path, 'cgroup.events'), 'utf8'));
    } catch {
      return false;
    }
  }

  /**
   * Kill whatever is left and remove the directory. Safe to call twice. A killed process keeps the
   * cgroup busy until it has fully exited (a large heap takes a while to unmap on a loaded
   * machine), so this waits for `populated 0` before removing, up to `timeoutMs`.
   * Resolves false if the directory could not be removed in time.
   */
  async destroy(timeoutMs = 10_000): Promise<boolean> {
    if (!existsSync(this.path)) return true;
    if (this.pids().length > 0) this.signalAll('SIGKILL');
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.populated()) {
        try {
          rmdirSync(this.path);
          return true;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
        }
      } else if (this.pids().length > 0) {
        this.signalAll('SIGKILL'); // a process forked while we were killing
      }
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/**
 * Remove cgroups left by a tlsrec that was SIGKILLed (it could not clean up): named
 * `<name>-<pid>-<n>`, their pid no longer alive, and empty (rmdir refuses a populated cgroup, so a
 * cgroup still in use is never touched).
 */
function removeStaleCgroups(parent: string): void {
  let entries: string[];
  try {
    entries = readdirSync(parent);
  } catch {
    return;
  }
  for (const entry of entries) {
    const m = /^.+-(\d+)-\d+$/.exec(entry);
    if (!m || isAlive(Number(m[1]))) continue;
    try {
      rmdirSync(join(parent, entry));
    } catch {
      // populated, or not ours to remove
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * argv that starts `command` inside `cgroup`: a tiny shell moves itself into the cgroup and then
 * exec's the command, so the command's very first instruction already runs in scope.
 */
export function argvInCgroup(cgroup: Cgroup, command: string[]): string[] {
  return ['/bin/sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup.path, ...command];
}
