import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { envValues, writeConfigEnv } from '../src/format/config-env.js';
import { loadConfig } from '../src/format/config-reader.js';
import { configEnvForApp } from '../src/replay/app-env.js';
import { InputFileError, UsageError } from '../src/errors.js';

const dirs: string[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'tlsrec-env-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('record --env NAME', () => {
  it('takes the current values; an unset or malformed name is a usage error', () => {
    expect(envValues(['PORT', 'MODE'], { PORT: '3000', MODE: 'demo' })).toEqual({ PORT: '3000', MODE: 'demo' });
    expect(() => envValues(['NOPE'], {})).toThrow(UsageError);
    expect(() => envValues(['NOPE'], {})).toThrow(/NOPE is not set/);
    expect(() => envValues(['A=B'], { 'A=B': 'x' })).toThrow(/not an environment variable name/);
  });

  it('adds env: to an existing tlsrec.yaml, keeping comments and other keys, and the reader reads it', () => {
    const file = join(tmp(), 'tlsrec.yaml');
    const before = '# my comment\ncommand: [node, server.js]\nappPort: 3000 # the port\nnoise: {}\n';
    writeFileSync(file, before);
    writeConfigEnv(file, { PORT: '3000', FEATURE_X: 'on' });
    const text = readFileSync(file, 'utf8');
    expect(text.startsWith(before.replace(/\n$/, ''))).toBe(true);
    expect(text).toContain('appPort: 3000 # the port');
    expect(text).toMatch(/# env: .*no secrets/i);
    expect(loadConfig(file).env).toEqual({ PORT: '3000', FEATURE_X: 'on' });

    // a second recording updates one value and keeps the other
    writeConfigEnv(file, { PORT: '4000' });
    expect(loadConfig(file).env).toEqual({ PORT: '4000', FEATURE_X: 'on' });
    expect(readFileSync(file, 'utf8').match(/# env:/g)?.length).toBe(1);
  });

  it('creates the file when absent; a broken file is an input error with its position', () => {
    const d = tmp();
    writeConfigEnv(join(d, 'new.yaml'), { PORT: '1' });
    expect(loadConfig(join(d, 'new.yaml')).env).toEqual({ PORT: '1' });
    const broken = join(d, 'broken.yaml');
    writeFileSync(broken, 'command: [node\nappPort: 3\n');
    expect(() => writeConfigEnv(broken, { PORT: '1' })).toThrow(InputFileError);
  });

  it('the reader rejects a bad variable name in env: with file:line:column', () => {
    const file = join(tmp(), 'tlsrec.yaml');
    writeFileSync(file, 'command: [node]\nenv:\n  PORT: 3000\n  bad-name: x\n');
    try {
      loadConfig(file);
      expect.fail('expected an error');
    } catch (err) {
      expect(err).toBeInstanceOf(InputFileError);
      expect((err as InputFileError).problems.join('\n')).toMatch(/tlsrec\.yaml:\d+:\d+/);
    }
    writeFileSync(file, 'env:\n  PORT: 3000\n  DEBUG: true\n');
    expect(loadConfig(file).env).toEqual({ PORT: '3000', DEBUG: 'true' });
  });
});

describe('env: at replay', () => {
  it('adds the config variables the environment tlsrec runs in does not set (that one wins)', () => {
    expect(configEnvForApp({ PORT: '3000', MODE: 'x' }, { PORT: '4000' })).toEqual({ MODE: 'x' });
    expect(configEnvForApp({ PORT: '3000' }, {})).toEqual({ PORT: '3000' });
  });
});
