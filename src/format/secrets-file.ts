// The files behind references: the secrets file (NAME: value, mode 0600, git-ignored by record)
// and the rewrite of an already written test whose response value turned out to flow into a
// later request (it then captures the value as a variable).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Document, isMap, isScalar, parseDocument, Scalar } from 'yaml';
import { InputFileError } from '../errors.js';
import type { Producer } from './variables.js';

export const DEFAULT_SECRETS_FILE = '.tlsrec-secrets.yaml';

/** NAME → value from a secrets file; a missing or empty file gives {}. Values are read as strings. */
export function readSecretsFile(file: string): Record<string, string> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return {};
  }
  const doc = parseDocument(text);
  const err = doc.errors[0];
  if (err) {
    const at = err.linePos?.[0];
    const problem = `${file}:${at?.line ?? 1}:${at?.col ?? 1}: ${err.message.split('\n')[0]}`;
    throw new InputFileError(`invalid secrets file ${file}: 1 problem\n${problem}`, [problem], {
      stage: 'read secrets',
      hint: 'the secrets file holds one NAME: value per line',
    });
  }
  const value = doc.toJS() as unknown;
  const out: Record<string, string> = {};
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value as Record<string, unknown>))
      if (v !== null && v !== undefined) out[k] = String(v);
  }
  return out;
}

const HEADER =
  '# Secrets that tlsrec kept out of the test files, by the name their references use\n' +
  '# ({{ .secret.NAME }}). Written by `tlsrec record`; never commit this file (it is in .gitignore).\n' +
  '# `tlsrec test` reads it; TLSREC_SECRET_<NAME> in the environment takes precedence.\n';

/** Adds (or replaces) one secret, keeping the others and the comments; the file is created 0600. */
export function writeSecret(file: string, name: string, value: string): void {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    text = HEADER;
  }
  const parsed = parseDocument(text);
  const doc = isMap(parsed.contents) ? parsed : new Document({});
  if (doc !== parsed) doc.commentBefore = HEADER.replace(/^# ?/gm, '').trimEnd();
  doc.set(name, value);
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}`);
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, doc.toString({ lineWidth: 0 }));
  } finally {
    fs.closeSync(fd);
  }
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, file);
}

/** Adds `entry` to the .gitignore in `dir` unless a line already names it. Returns true when added. */
export function ensureGitignored(dir: string, entry: string): boolean {
  const file = path.join(dir, '.gitignore');
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    text = '';
  }
  const bare = entry.replace(/^\/+/, '');
  if (text.split('\n').some((l) => l.trim().replace(/^\/+/, '') === bare)) return false;
  fs.writeFileSync(file, `${text}${text === '' || text.endsWith('\n') ? '' : '\n'}${entry}\n`);
  return true;
}

/** Rewrites a written test so its response captures `producer.value` as `ref` ({{ .name }}). */
export function rewriteProducer(producer: Producer, ref: string): void {
  const text = fs.readFileSync(producer.file, 'utf8');
  const doc = parseDocument(text);
  if (producer.where === 'body') {
    const node = doc.getIn(['spec', 'resp', 'body'], true);
    if (!isScalar(node) || typeof node.value !== 'string') return;
    const body = node.value;
    const quoted = JSON.stringify(producer.value);
    node.value = body.includes(quoted)
      ? body.split(quoted).join(JSON.stringify(ref))
      : body.split(producer.value).join(ref);
    if (node.type !== Scalar.QUOTE_DOUBLE) node.type = Scalar.BLOCK_LITERAL;
  } else {
    const header = doc.getIn(['spec', 'resp', 'header'], true);
    if (!isMap(header)) return;
    for (const pair of header.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : '';
      if (key.toLowerCase() !== producer.where.header.toLowerCase()) continue;
      const v = pair.value;
      if (isScalar(v) && typeof v.value === 'string') v.value = v.value.split(producer.value).join(ref);
    }
  }
  const tmp = path.join(path.dirname(producer.file), `.${path.basename(producer.file)}.tmp-${process.pid}`);
  fs.writeFileSync(tmp, doc.toString({ lineWidth: 0 }));
  fs.renameSync(tmp, producer.file);
}
