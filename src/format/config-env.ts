// `tlsrec record --env NAME`: writes NAME: value into tlsrec.yaml's `env:` map, editing the file's
// YAML document so the user's comments, key order and other settings stay as they are. A file
// that does not exist yet is created with only `env:` (record writes its command and port first
// when it creates the file). Values are written in clear: `env:` is not for secrets.

import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isMap, isScalar, Pair, parseDocument, Scalar, YAMLMap } from 'yaml';
import { InputFileError, OutputError, UsageError, causeText } from '../errors.js';

/** A POSIX-ish environment variable name. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * NAME -> its current value in `from`. A name that is not a variable name or is not set is a
 * usage error: writing an empty value would hide the mistake until the replay.
 */
export function envValues(names: readonly string[], from: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of names) {
    if (!ENV_NAME.test(name)) {
      throw new UsageError(`--env ${name}: not an environment variable name`, {
        stage: 'parse arguments',
        hint: 'give the name only, e.g. --env PORT (the value is taken from the environment)',
      });
    }
    const value = from[name];
    if (value === undefined) {
      throw new UsageError(`--env ${name}: ${name} is not set in the environment`, {
        stage: 'parse arguments',
        hint: `set it for the recording: ${name}=... tlsrec record --env ${name} -- <command>`,
      });
    }
    out[name] = value;
  }
  return out;
}

/** Sets each variable in the config file's `env:` map (added at the end when absent). */
export function writeConfigEnv(file: string, values: Readonly<Record<string, string>>): void {
  if (Object.keys(values).length === 0) return;
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const doc = parseDocument(text);
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const at = e.linePos?.[0] ? `:${e.linePos[0].line}:${e.linePos[0].col}` : '';
    const problem = `${file}${at}: ${e.message.split('\n')[0]}`;
    throw new InputFileError(`cannot add env to ${file}`, [problem], {
      stage: 'write config',
      hint: 'fix the file, or add the variables under env: by hand',
    });
  }
  if (doc.contents === null) doc.contents = new YAMLMap() as unknown as typeof doc.contents;
  if (!isMap(doc.contents)) {
    throw new InputFileError(`cannot add env to ${file}`, [`${file}:1:1: expected a mapping (key: value) at the top`], {
      stage: 'write config',
    });
  }
  let env = doc.get('env', true);
  if (env === undefined || env === null || (!isMap(env) && (env as { value?: unknown }).value === null)) {
    env = new YAMLMap();
    const key = new Scalar('env');
    key.commentBefore =
      ' env: variables the app needs at replay (set by test and rerecord). Written in clear: no secrets here.';
    const top = doc.contents as YAMLMap;
    top.items = top.items.filter((p) => !(isScalar(p.key) && p.key.value === 'env'));
    top.items.push(new Pair(key, env));
  }
  if (!isMap(env)) {
    throw new InputFileError(`cannot add env to ${file}`, [`${file}: env: expected a mapping NAME: value`], {
      stage: 'write config',
    });
  }
  for (const [name, value] of Object.entries(values)) (env as YAMLMap).set(name, value);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, doc.toString({ lineWidth: 0, flowCollectionPadding: false }));
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new OutputError(`cannot write ${file}: ${causeText(err)}`, {
      stage: 'write config',
      cause: err,
      hint: `add under env: in ${file} by hand: ${Object.keys(values).join(', ')}`,
    });
  }
}
