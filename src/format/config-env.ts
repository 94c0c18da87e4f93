// `tlsrec record --env NAME`: writes NAME: value into tlsrec.yaml's `env:` map, editing the file's
// YAML document so the user's comments, key order and other settings stay as they are. A file
// that does not exist yet is created with only `env:` (record writes its command and port first
// when it creates the file). Values are written in clear: `env:` is not for secrets.

import { isMap, YAMLMap } from 'yaml';
import { UsageError } from '../errors.js';
import { openConfigDocument, saveConfigDocument, topLevelNode } from './config-edit.js';

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
  const doc = openConfigDocument(file, 'env');
  const env = topLevelNode(
    doc,
    'env',
    isMap,
    () => new YAMLMap(),
    ' env: variables the app needs at replay (set by test and rerecord). Written in clear: no secrets here.',
  );
  for (const [name, value] of Object.entries(values)) env.set(name, value);
  saveConfigDocument(file, doc, `add under env: in ${file} by hand: ${Object.keys(values).join(', ')}`);
}
