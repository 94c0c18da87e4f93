// `tlsrec record --proto DIR`: the directories go into tlsrec.yaml's `proto:` list (editing the
// file's YAML document, comments and other settings kept), so that `test` and `rerecord` decode
// gRPC messages with the same .proto files. Directories already listed are not added again.

import { existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { isMap, isScalar, isSeq, Pair, parseDocument, Scalar, YAMLMap, YAMLSeq } from 'yaml';
import { InputFileError, OutputError, UsageError, causeText } from '../errors.js';

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
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const doc = parseDocument(text);
  if (doc.errors.length > 0 || (doc.contents !== null && !isMap(doc.contents))) {
    throw new InputFileError(
      `cannot add proto to ${file}`,
      [`${file}: ${doc.errors[0]?.message.split('\n')[0] ?? 'expected a mapping (key: value) at the top'}`],
      { stage: 'write config' },
    );
  }
  if (doc.contents === null) doc.contents = new YAMLMap() as unknown as typeof doc.contents;
  const top = doc.contents as YAMLMap;
  let list = doc.get('proto', true);
  if (!isSeq(list)) {
    list = new YAMLSeq();
    const key = new Scalar('proto');
    key.commentBefore = ' proto: directories of .proto files; gRPC messages are shown and compared by field name.';
    top.items = top.items.filter((p) => !(isScalar(p.key) && p.key.value === 'proto'));
    top.items.push(new Pair(key, list));
  }
  const seq = list as YAMLSeq;
  const have = new Set(seq.items.map((i) => String(isScalar(i) ? i.value : i)));
  for (const d of dirs) {
    // relative to the config file when under its directory (a project's own protos), else absolute
    const rel = relative(dirname(resolve(file)), d) || '.';
    const entry = rel.startsWith('..') || isAbsolute(rel) ? d : rel;
    if (!have.has(entry)) seq.add(entry);
  }
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, doc.toString({ lineWidth: 0, flowCollectionPadding: false }));
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new OutputError(`cannot write ${file}: ${causeText(err)}`, {
      stage: 'write config',
      cause: err,
      hint: `add under proto: in ${file} by hand: ${dirs.join(', ')}`,
    });
  }
}
