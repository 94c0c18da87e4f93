// The tlsrec.yaml that `record` writes when there is none: the command and the port the app served
// on, with empty noise, passthrough and redact lists, the secrets file's name, and comments saying what each is for.

import { linkSync, rmSync, existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { stringify } from 'yaml';
import { causeText, OutputError } from '../errors.js';
import { DEFAULT_SECRETS_FILE } from './secrets-file.js';

/** The text of a new tlsrec.yaml. */
export function newConfigText(command: string[], appPort: number | undefined): string {
  const doc: Record<string, unknown> = { command };
  if (appPort !== undefined) doc.appPort = appPort;
  doc.noise = {};
  doc.passthrough = [];
  doc.redact = [];
  doc.secrets = DEFAULT_SECRETS_FILE;
  return (
    '# tlsrec configuration: written by `tlsrec record`, meant to be edited.\n' +
    '# command: how `tlsrec test` starts the app; appPort: where it listens.\n' +
    '# noise: fields ignored in every test, e.g. {"header.X-Request-Id": [], "body.createdAt": []}\n' +
    '# passthrough: outgoing destinations not served from mocks, e.g. ["127.0.0.1:5432"]\n' +
    '# redact: more header names, JSON keys and paths kept out of the files, e.g. ["x-session", "$.user.ssn"]\n' +
    '# secrets: where record puts the values kept out of the files (never commit it)\n' +
    stringify(doc)
  );
}

/** Writes a new tlsrec.yaml at `path` unless a file is there; throws OutputError when it cannot. */
export async function writeConfigIfAbsent(path: string, command: string[], appPort: number | undefined): Promise<void> {
  if (existsSync(path)) return;
  // Written whole to a private name, then linked into place: a full disk never leaves a truncated
  // tlsrec.yaml behind (which later recordings would take as the user's), and link() never
  // replaces a file someone created meanwhile.
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, newConfigText(command, appPort), { flag: 'wx' });
    linkSync(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new OutputError(`cannot write ${path}: ${causeText(err)}`, {
        stage: 'write config',
        hint: `write it by hand: command: ${JSON.stringify(command)}${appPort === undefined ? '' : `, appPort: ${appPort}`}`,
        cause: err,
      });
    }
  } finally {
    rmSync(tmp, { force: true });
  }
}
