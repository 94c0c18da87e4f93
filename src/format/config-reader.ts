// tlsrec.yaml -> Config. A missing file gives the defaults; a broken one throws InputFileError
// listing every problem as file:line:column.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Collector, noiseRules, readText, throwIfProblems } from './problem-collector.js';
import { configSchema } from './schemas.js';
import { DEFAULT_SECRETS_FILE } from './secrets-file.js';
import type { Config } from './types.js';
import { parseYaml, schemaProblems, type YamlPath } from './validate.js';

export const DEFAULT_CONFIG_FILE = 'tlsrec.yaml';
export const DEFAULT_READY_TIMEOUT_MS = 30_000;

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

const DEFAULT_CONFIG: Config = {
  file: undefined,
  command: undefined,
  appPort: undefined,
  healthUrl: undefined,
  readyTimeoutMs: DEFAULT_READY_TIMEOUT_MS,
  noise: [],
  passthrough: [],
  redactHeaders: [],
  redactKeys: [],
  redactPaths: [],
  secretsFile: DEFAULT_SECRETS_FILE,
};

/**
 * Reads tlsrec.yaml (default: ./tlsrec.yaml). A missing file gives the defaults; a broken one
 * throws InputFileError with every problem.
 */
export function loadConfig(file: string = DEFAULT_CONFIG_FILE): Config {
  if (!fs.existsSync(file))
    return { ...DEFAULT_CONFIG, secretsFile: path.join(path.dirname(file), DEFAULT_SECRETS_FILE) };
  const c = new Collector();
  const text = readText(file, c);
  const config = text === undefined ? undefined : configFromText(file, text, c);
  throwIfProblems(c, `invalid configuration ${file}`, 'read config');
  return config ?? { ...DEFAULT_CONFIG, file };
}

function configFromText(file: string, text: string, c: Collector): Config | undefined {
  const parsed = parseYaml(file, text);
  parsed.problems.forEach((p) => c.add(p));
  if (parsed.problems.length > 0) return undefined;
  const doc = parsed.docs[0];
  if (!doc) return { ...DEFAULT_CONFIG, file };
  if (parsed.docs.length > 1)
    c.at(file, parsed.docs[1]!, parsed.lineCounter, [], 'expected one YAML document, found several');
  const value = doc.toJS({ maxAliasCount: 100 }) as unknown;
  const schemaIssues = schemaProblems(file, doc, parsed.lineCounter, configSchema, value);
  schemaIssues.forEach((p) => c.add(p));
  if (schemaIssues.length > 0) return undefined;
  const v = obj(value);
  const report = (p: YamlPath, m: string, atKey = false): void => c.at(file, doc, parsed.lineCounter, p, m, atKey);
  const noise = noiseRules(v.noise, ['noise'], report);
  const command =
    typeof v.command === 'string'
      ? ['/bin/sh', '-c', v.command]
      : Array.isArray(v.command)
        ? v.command.map(String)
        : undefined;
  if (command && command.length === 0) report(['command'], 'command: expected a command, found an empty list');
  return {
    file,
    command: command && command.length > 0 ? command : undefined,
    appPort: typeof v.appPort === 'number' ? v.appPort : undefined,
    healthUrl: str(v.healthUrl),
    readyTimeoutMs: typeof v.readyTimeout === 'number' ? Math.round(v.readyTimeout * 1000) : DEFAULT_READY_TIMEOUT_MS,
    noise,
    passthrough: Array.isArray(v.passthrough) ? v.passthrough.map(String) : [],
    ...(v.env === undefined
      ? {}
      : { env: Object.fromEntries(Object.entries(obj(v.env)).map(([k, x]) => [k, String(x)])) }),
    ...(Array.isArray(v.proto) ? { protoDirs: v.proto.map((d) => path.resolve(path.dirname(file), String(d))) } : {}),
    ...redactLists(v.redact),
    secretsFile: path.join(path.dirname(file), str(v.secrets) ?? DEFAULT_SECRETS_FILE),
  };
}

/** tlsrec.yaml `redact:` as a list (paths start with "$." or "body.", the rest are names) or { headers, keys, paths }. */
function redactLists(redact: unknown): Pick<Config, 'redactHeaders' | 'redactKeys' | 'redactPaths'> {
  const strings = (x: unknown): string[] => (Array.isArray(x) ? x.map(String) : []);
  if (Array.isArray(redact)) {
    const all = strings(redact);
    const isPath = (e: string): boolean => /^(\$|body\.)/.test(e) || e.includes('.');
    const names = all.filter((e) => !isPath(e));
    return { redactHeaders: names, redactKeys: names, redactPaths: all.filter(isPath) };
  }
  const r = obj(redact);
  return { redactHeaders: strings(r.headers), redactKeys: strings(r.keys), redactPaths: strings(r.paths) };
}
