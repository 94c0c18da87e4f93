// Writes exchanges as they arrive: one file per test (temp file + rename), one YAML document per
// mock appended to mocks.yaml in a single write(2). Nothing is kept in memory, and a crash of
// tlsrec at any point leaves files that parse (at worst without the last exchange). There is no
// fsync per exchange: it cost ~1 ms each (measured: 673 exchanges/s with it) and only protects
// against a crash of the whole machine; close() syncs once.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { causeText, InputFileError, OutputError } from '../errors.js';
import type { Exchange, HttpExchange } from '../model/exchange.js';
import { exchangeToMockDoc, exchangeToTestDoc, renderYaml, type DocOptions } from './render.js';
import { SCHEMA_FILES, schemaFileContents } from './schemas.js';
import { readSecretsFile, rewriteProducer, writeSecret } from './secrets-file.js';
import { RecordingRefs } from './variables.js';

export { defaultMonoToWallNs, exchangeToMockDoc, exchangeToTestDoc, renderYaml, type DocOptions } from './render.js';

export interface TestSetWriterOptions extends DocOptions {
  /** Directory holding the test sets. Default "tlsrec". */
  rootDir?: string;
  /** Test set to write into (created or continued). Default: the next free test-set-N. */
  testSet?: string;
  /** JSON keys and paths redacted in addition to the defaults (tlsrec.yaml `redact:`). */
  redactKeys?: string[];
  redactPaths?: string[];
  /** Where secret values go (0600), by the names their references use. Default: nowhere (names only). */
  secretsFile?: string;
}

/**
 * How exchanges of a protocol other than HTTP/1 become documents: that protocol's `files`
 * (src/protocols/), given by protocol name to TestSetWriter.create by the recording side.
 */
export interface ExchangeDocs {
  testDoc(ex: Exchange, n: number, opts: DocOptions): unknown;
  mockDoc(ex: Exchange, n: number, opts: DocOptions): unknown;
  yaml(doc: unknown, schemaRef?: string): string;
}

export interface TestSetSummary {
  tests: number;
  mocks: number;
  /** Exchanges that could not be written (each also raised an OutputError from writeExchange). */
  failedTests: number;
  failedMocks: number;
}

/** HTTP/1 and HTTP/2 exchanges are Keploy `kind: Http` documents, which the writer renders itself. */
const isHttp = (ex: Exchange): ex is HttpExchange => ex.protocol === 'http1' || ex.protocol === 'http2';

/** Where the writer copies the schemas, relative to the root: `$schema` lines point there. */
export const SCHEMA_DIR = '.schema';

const naturalCompare = (a: string, b: string): number => a.localeCompare(b, 'en', { numeric: true });

function writeAll(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
}

/** Writes a whole file under a temporary name and renames it into place. */
function writeFileAtomic(file: string, data: string): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}`);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'w', 0o644);
    writeAll(fd, Buffer.from(data, 'utf8'));
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (err) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        /* already failing */
      }
    }
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* may not exist */
    }
    throw err;
  }
}

function fsyncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // best effort: some file systems refuse fsync on directories
  }
}

export function outputError(what: string, file: string, err: unknown): OutputError {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  const hint =
    code === 'ENOSPC' || code === 'EDQUOT'
      ? 'free some disk space and record again'
      : code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
        ? `check that ${path.dirname(file)} is writable`
        : undefined;
  return new OutputError(`could not write ${what} ${file}: ${causeText(err)}`, {
    stage: 'write recording',
    cause: err,
    ...(hint ? { hint } : {}),
  });
}

/** Copies the schemas next to the recordings so `$schema` works offline and whatever installed tlsrec. */
function installSchemas(rootDir: string): void {
  const dir = path.join(rootDir, SCHEMA_DIR);
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(schemaFileContents())) {
    const file = path.join(dir, name);
    let current: string | undefined;
    try {
      current = fs.readFileSync(file, 'utf8');
    } catch {
      current = undefined;
    }
    if (current !== text) writeFileAtomic(file, text);
  }
}

function highestNumber(names: Iterable<string>, re: RegExp): number {
  let max = -1;
  for (const n of names) {
    const m = re.exec(n);
    if (m) max = Math.max(max, Number(m[1]));
  }
  return max;
}

function createTestSetDir(rootDir: string, requested: string | undefined): { name: string; dir: string } {
  if (requested !== undefined) {
    if (requested === '' || requested.startsWith('.') || /[/\\]/.test(requested)) {
      throw new OutputError(`invalid test set name "${requested}"`, {
        stage: 'write recording',
        hint: 'use a plain directory name such as test-set-3',
      });
    }
    const dir = path.join(rootDir, requested);
    fs.mkdirSync(dir, { recursive: true });
    return { name: requested, dir };
  }
  let n = highestNumber(fs.readdirSync(rootDir), /^test-set-(\d+)$/) + 1;
  for (;;) {
    const name = `test-set-${n}`;
    const dir = path.join(rootDir, name);
    try {
      fs.mkdirSync(dir); // not recursive: claims the name even against a concurrent recorder
      return { name, dir };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      n++;
    }
  }
}

export class TestSetWriter {
  readonly dir: string;
  readonly name: string;
  private readonly testsDir: string;
  private readonly mocksFile: string;
  private readonly opts: DocOptions;
  private nextTest: number;
  private nextMock: number;
  private mocksFd: number | undefined;
  /** Size of mocks.yaml after the last complete document: a failed append is cut back to it. */
  private mocksSize = 0;
  /** A hand-edited mocks.yaml may lack its final newline. */
  private mocksNeedNewline = false;
  private closed = false;
  private readonly counts: TestSetSummary = { tests: 0, mocks: 0, failedTests: 0, failedMocks: 0 };
  private readonly docs: ReadonlyMap<string, ExchangeDocs>;

  private constructor(
    name: string,
    dir: string,
    opts: DocOptions,
    nextTest: number,
    nextMock: number,
    docs: ReadonlyMap<string, ExchangeDocs>,
  ) {
    this.docs = docs;
    this.name = name;
    this.dir = dir;
    this.testsDir = path.join(dir, 'tests');
    this.mocksFile = path.join(dir, 'mocks.yaml');
    this.opts = opts;
    this.nextTest = nextTest;
    this.nextMock = nextMock;
  }

  /** `docs`: the document makers of protocols other than HTTP/1, by protocol name. */
  static async create(
    opts: TestSetWriterOptions = {},
    docs: ReadonlyMap<string, ExchangeDocs> = new Map(),
  ): Promise<TestSetWriter> {
    const rootDir = opts.rootDir ?? 'tlsrec';
    try {
      fs.mkdirSync(rootDir, { recursive: true });
      installSchemas(rootDir);
      const { name, dir } = createTestSetDir(rootDir, opts.testSet);
      const testsDir = path.join(dir, 'tests');
      fs.mkdirSync(testsDir, { recursive: true });
      // Continuing an existing set: number after what is there.
      const nextTest = Math.max(1, highestNumber(fs.readdirSync(testsDir), /^test-(\d+)\.ya?ml$/) + 1);
      let nextMock = 0;
      try {
        const existing = fs.readFileSync(path.join(dir, 'mocks.yaml'), 'utf8').split('\n');
        nextMock = highestNumber(existing, /^name:\s*["']?mock-(\d+)/) + 1;
      } catch {
        nextMock = 0;
      }
      const docOpts: DocOptions = {
        ...(opts.redact === false ? { redact: false } : {}),
        ...(opts.redactHeaders ? { redactHeaders: opts.redactHeaders } : {}),
        ...(opts.appUrlBase ? { appUrlBase: opts.appUrlBase } : {}),
        ...(opts.protoDirs && opts.protoDirs.length > 0 ? { protoDirs: opts.protoDirs } : {}),
        ...(opts.monoToWallNs !== undefined ? { monoToWallNs: opts.monoToWallNs } : {}),
      };
      const secretsFile = opts.secretsFile;
      docOpts.refs = new RecordingRefs({
        redact: opts.redact !== false,
        rules: { headers: opts.redactHeaders ?? [], keys: opts.redactKeys ?? [], paths: opts.redactPaths ?? [] },
        knownSecrets: secretsFile ? readSecretsFile(secretsFile) : {},
        ...(secretsFile ? { onSecret: (name: string, value: string) => writeSecret(secretsFile, name, value) } : {}),
        rewriteProducer,
      });
      return new TestSetWriter(name, dir, docOpts, nextTest, nextMock, docs);
    } catch (err) {
      if (err instanceof OutputError || err instanceof InputFileError) throw err;
      throw outputError('test set directory in', rootDir, err);
    }
  }

  /**
   * Incoming exchanges become tests/test-N.yaml, outgoing ones are appended to mocks.yaml.
   * Throws OutputError when the file cannot be written; the writer stays usable and counts it.
   */
  writeExchange(ex: Exchange): void {
    if (this.closed) throw new Error('TestSetWriter.writeExchange after close()');
    if (ex.role === 'incoming') this.writeTest(ex);
    else this.writeMock(ex);
  }

  private writeTest(ex: Exchange): void {
    const n = this.nextTest;
    const file = path.join(this.testsDir, `test-${n}.yaml`);
    if (this.opts.refs) this.opts.refs.currentFile = file;
    try {
      // Other protocols' tests get no $schema line: the test schema describes Http documents.
      const other = isHttp(ex) ? undefined : this.docsOf(ex);
      const text = other
        ? other.yaml(other.testDoc(ex, n, this.opts))
        : renderYaml(exchangeToTestDoc(ex as HttpExchange, n, this.opts), `../../${SCHEMA_DIR}/${SCHEMA_FILES.test}`);
      writeFileAtomic(file, text);
    } catch (err) {
      this.counts.failedTests++;
      throw outputError('test', file, err);
    }
    this.nextTest++;
    this.counts.tests++;
  }

  private writeMock(ex: Exchange): void {
    const n = this.nextMock;
    const file = this.mocksFile;
    try {
      const other = isHttp(ex) ? undefined : this.docsOf(ex);
      const doc = other
        ? other.yaml(other.mockDoc(ex, n, this.opts))
        : renderYaml(exchangeToMockDoc(ex as HttpExchange, n, this.opts));
      if (this.mocksFd === undefined) {
        this.mocksFd = fs.openSync(file, 'a+', 0o644);
        this.mocksSize = fs.fstatSync(this.mocksFd).size;
        this.mocksNeedNewline = !this.endsWithNewline();
      }
      const prefix =
        this.mocksSize === 0
          ? `# yaml-language-server: $schema=../${SCHEMA_DIR}/${SCHEMA_FILES.mock}\n`
          : this.mocksNeedNewline
            ? '\n---\n'
            : '---\n';
      const buf = Buffer.from(prefix + doc, 'utf8');
      try {
        writeAll(this.mocksFd, buf);
      } catch (err) {
        // Cut off a partial document so the file still parses.
        try {
          fs.ftruncateSync(this.mocksFd, this.mocksSize);
        } catch {
          /* disk is failing already */
        }
        throw err;
      }
      this.mocksSize += buf.length;
      this.mocksNeedNewline = false;
    } catch (err) {
      this.counts.failedMocks++;
      throw outputError('mock in', file, err);
    }
    this.nextMock++;
    this.counts.mocks++;
  }

  private docsOf(ex: Exchange): ExchangeDocs {
    const docs = this.docs.get(ex.protocol);
    if (!docs) throw new Error(`no document writer for ${ex.protocol} exchanges`);
    return docs;
  }

  private endsWithNewline(): boolean {
    if (this.mocksFd === undefined || this.mocksSize === 0) return true;
    const b = Buffer.alloc(1);
    fs.readSync(this.mocksFd, b, 0, 1, this.mocksSize - 1);
    return b[0] === 0x0a;
  }

  /** Closes mocks.yaml and makes the new directory entries durable. Safe to call twice. */
  async close(): Promise<TestSetSummary> {
    if (!this.closed) {
      this.closed = true;
      if (this.mocksFd !== undefined) {
        try {
          fs.fsyncSync(this.mocksFd);
        } catch {
          /* best effort: the data is written */
        }
        try {
          fs.closeSync(this.mocksFd);
        } catch {
          /* nothing left to do */
        }
        this.mocksFd = undefined;
      }
      fsyncDir(this.testsDir);
      fsyncDir(this.dir);
    }
    return { ...this.counts };
  }
}

export { naturalCompare };
