// Finding the command to record the way a shell would (PATH, or a path with a slash), and the
// files worth attaching OpenSSL probes to before it starts: the executable and, for a script, the
// interpreter named on its #! line.

import { accessSync, closeSync, constants, openSync, readSync, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { AppError } from '../errors.js';

export interface ResolvedCommand {
  /** The executable file that will be run. */
  path: string;
  /** It and the interpreter of its #! line, if any. */
  binaries: string[];
}

export function resolveCommand(
  name: string,
  pathEnv = process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
): ResolvedCommand {
  const candidates = name.includes('/')
    ? [resolve(name)]
    : pathEnv
        .split(delimiter)
        .filter(Boolean)
        .map((d) => join(d, name));
  for (const file of candidates) {
    try {
      if (!statSync(file).isFile()) continue;
      accessSync(file, constants.X_OK);
    } catch {
      continue;
    }
    return { path: file, binaries: [file, ...interpreterOf(file, pathEnv)] };
  }
  throw new AppError(`command not found: ${name}`, {
    stage: 'start command',
    hint: name.includes('/') ? 'check the path and that the file is executable' : `is ${name} installed and on PATH?`,
  });
}

/** The interpreter named on the #! line of `file` (through `env`, looked up on PATH), if any. */
export function interpreterOf(file: string, pathEnv = process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin'): string[] {
  // Only the first line matters: never read a whole (100 MB) executable for it.
  let head: string;
  try {
    const fd = openSync(file, 'r');
    try {
      const buf = Buffer.alloc(256);
      head = buf.toString('latin1', 0, readSync(fd, buf, 0, buf.length, 0));
    } finally {
      closeSync(fd);
    }
  } catch {
    return [];
  }
  if (!head.startsWith('#!')) return [];
  const parts = head.slice(2).split('\n')[0]!.trim().split(/\s+/);
  if (parts[0]?.endsWith('/env') && parts[1]) {
    try {
      return [resolveCommand(parts[1] === '-S' ? (parts[2] ?? '') : parts[1], pathEnv).path];
    } catch {
      return [];
    }
  }
  return parts[0] && isAbsolute(parts[0]) ? [parts[0]] : [];
}
