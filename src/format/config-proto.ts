// `tlsrec record --proto DIR`: the directories go into tlsrec.yaml's `proto:` list (editing the
// file's YAML document, comments and other settings kept), so that `test` and `rerecord` decode
// gRPC messages with the same .proto files. Directories already listed are not added again.

import { statSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { isScalar, isSeq, YAMLSeq } from 'yaml';
import { UsageError } from '../errors.js';
import { openConfigDocument, saveConfigDocument, topLevelNode } from './config-edit.js';

/** The given directories, absolute; one that is not a directory is a usage error. */
export function protoDirsOf(dirs: readonly string[]): string[] {
  return dirs.map((d) => {
    const abs = resolve(d);
    let ok = false;
    try {
      ok = statSync(abs).isDirectory();
    } catch {
      ok = false;
    }
    if (!ok)
      throw new UsageError(`--proto ${d}: not a directory`, {
        stage: 'parse arguments',
        hint: 'give a directory that holds your .proto files',
      });
    return abs;
  });
}

/** Adds the directories to the config file's `proto:` list. */
export function writeConfigProto(file: string, dirs: readonly string[]): void {
  if (dirs.length === 0) return;
  const doc = openConfigDocument(file, 'proto');
  const seq = topLevelNode(
    doc,
    'proto',
    isSeq,
    () => new YAMLSeq(),
    ' proto: directories of .proto files; gRPC messages are shown and compared by field name.',
  );
  const have = new Set(seq.items.map((i) => String(isScalar(i) ? i.value : i)));
  for (const d of dirs) {
    // relative to the config file when under its directory (a project's own protos), else absolute
    const rel = relative(dirname(resolve(file)), d) || '.';
    const entry = rel.startsWith('..') || isAbsolute(rel) ? d : rel;
    if (!have.has(entry)) seq.add(entry);
  }
  saveConfigDocument(file, doc, `add under proto: in ${file} by hand: ${dirs.join(', ')}`);
}
