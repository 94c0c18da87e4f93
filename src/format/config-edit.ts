// Edits of tlsrec.yaml that `record` makes for the user (`--env`, `--proto`): through the file's
// YAML document, so the user's comments, key order and other settings stay as they are, written
// whole to a private name and renamed into place.

import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { type Document, isMap, isScalar, Pair, parseDocument, Scalar, YAMLMap } from 'yaml';
import { InputFileError, OutputError, causeText } from '../errors.js';

/** The config file as a YAML document whose top is a mapping (a missing or empty file gives an empty one). */
export function openConfigDocument(file: string, key: string): Document {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const doc = parseDocument(text);
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const at = e.linePos?.[0] ? `:${e.linePos[0].line}:${e.linePos[0].col}` : '';
    throw new InputFileError(`cannot add ${key} to ${file}`, [`${file}${at}: ${e.message.split('\n')[0]}`], {
      stage: 'write config',
      hint: `fix the file, or add ${key}: by hand`,
    });
  }
  if (doc.contents === null) doc.contents = new YAMLMap() as unknown as typeof doc.contents;
  if (!isMap(doc.contents)) {
    throw new InputFileError(
      `cannot add ${key} to ${file}`,
      [`${file}:1:1: expected a mapping (key: value) at the top`],
      {
        stage: 'write config',
      },
    );
  }
  return doc;
}

/**
 * The top-level `key` of the document when it is the kind `isKind` accepts; otherwise a new node
 * from `create`, put last in place of whatever stood there, with `comment` above it.
 */
export function topLevelNode<T>(
  doc: Document,
  key: string,
  isKind: (n: unknown) => n is T,
  create: () => T,
  comment: string,
): T {
  const found = doc.get(key, true);
  if (isKind(found)) return found;
  const node = create();
  const name = new Scalar(key);
  name.commentBefore = comment;
  const top = doc.contents as YAMLMap;
  top.items = top.items.filter((p) => !(isScalar(p.key) && p.key.value === key));
  top.items.push(new Pair(name, node));
  return node;
}

/** Writes the document back: whole to a private name, then renamed over the file. */
export function saveConfigDocument(file: string, doc: Document, byHand: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, doc.toString({ lineWidth: 0, flowCollectionPadding: false }));
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new OutputError(`cannot write ${file}: ${causeText(err)}`, {
      stage: 'write config',
      cause: err,
      hint: byHand,
    });
  }
}
