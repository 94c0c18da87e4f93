// The YAML editor behind --detect-noise and --update: edits land where they belong, everything else
// (comments, key order, quoting, block scalars, 2- or 4-space indentation, other documents) keeps
// its bytes, and the edited files still load with the reader.

import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { detectIndent, YamlFileEditor } from '../src/format/edit.js';
import { loadTestSets } from '../src/format/reader.js';
import { exchangeToMockDoc, exchangeToTestDoc, renderYaml } from '../src/format/render.js';
import { makeExchange } from './fixtures-format/make-exchange.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'tlsrec-edit-'));
  dirs.push(d);
  return d;
}

/** A test file as tlsrec writes it, plus hand edits: a comment, a noise entry. */
function tlsrecTestFile(): string {
  const ex = makeExchange({
    target: '/session',
    resHeaders: [
      ['Content-Type', 'application/json'],
      ['ETag', 'W/"abc"'],
      ['Content-Length', '60'],
    ],
    resBody: '{"id":"1f0e","user":{"name":"Ada","plan":"pro"},"items":[{"sku":"A","seenAt":"2026-01-01T00:00:00Z"}]}',
  });
  const text = renderYaml(exchangeToTestDoc(ex, 1), '../../.schema/test.schema.json');
  return text
    .replace('kind: Http\n', 'kind: Http\n# hand comment: keep me\n')
    .replace(/( +)header\.Date: \[\]\n/, '$1header.Date: []\n$1body.id: [] # the id is random\n');
}

describe('YamlFileEditor', () => {
  it('detects 2- and 4-space indentation', () => {
    expect(detectIndent('a:\n  b: 1\n')).toBe(2);
    expect(detectIndent('# c\nversion: x\nspec:\n    req: 1\n')).toBe(4);
  });

  it('adds test noise without touching anything else (comments, order, block body)', () => {
    const text = tlsrecTestFile();
    const ed = new YamlFileEditor('t.yaml', text);
    expect(ed.addTestNoise(['body.items.seenAt', 'header.ETag', 'body.id'])).toEqual([
      'body.items.seenAt',
      'header.ETag',
    ]);
    const out = ed.toString();
    // Every original line is still there, in order; the new entries follow the existing ones.
    const added = out.split('\n').filter((l) => !text.split('\n').includes(l));
    expect(added.map((l) => l.trim())).toEqual(['body.items.seenAt: []', 'header.ETag: []']);
    expect(out).toContain('# hand comment: keep me');
    expect(out).toContain('body.id: [] # the id is random');
    expect(out).toMatch(/ {4}body: \|-?\n {6}\{\n/);
    const v = parse(out) as { spec: { assertions: { noise: Record<string, string[]> } } };
    expect(Object.keys(v.spec.assertions.noise)).toEqual([
      'header.Date',
      'body.id',
      'body.items.seenAt',
      'header.ETag',
    ]);
  });

  it('creates assertions.noise after objects when the file has none (Keploy, 4 spaces)', () => {
    const text = readFileSync('keploy-tests/test-set-0/tests/test-1.yaml', 'utf8').replace(
      / {4}assertions:\n {8}noise:\n {12}header.Date: \[\]\n/,
      '',
    );
    expect(text).not.toContain('assertions');
    const ed = new YamlFileEditor('t.yaml', text);
    ed.addTestNoise(['body.price']);
    const out = ed.toString();
    expect(out).toContain(
      '    objects: []\n    assertions:\n        noise:\n            body.price: []\n    created: 1795705595\n',
    );
    // the rest is byte for byte the same
    expect(out.replace('    assertions:\n        noise:\n            body.price: []\n', '')).toBe(text);
  });

  it('adds mock noise in Keploy shape to one document; the other documents keep their bytes', () => {
    const docs = [0, 1, 2].map((n) =>
      renderYaml(
        exchangeToMockDoc(
          makeExchange({
            role: 'outgoing',
            tls: true,
            method: 'POST',
            target: '/orders',
            reqHeaders: [
              ['Host', 'api.test'],
              ['Content-Type', 'application/json'],
            ],
            reqBody: `{"item":"pen","nonce":"n${n}"}`,
            resBody: '{"ok":true}',
            resHeaders: [['Content-Type', 'application/json']],
          }),
          n,
        ),
      ),
    );
    const text = `# yaml-language-server: $schema=../.schema/mocks.schema.json\n${docs.join('---\n')}`;
    const ed = new YamlFileEditor('mocks.yaml', text);
    const di = ed.findDocument(undefined, 'mock-1');
    expect(di).toBe(1);
    expect(ed.addMockNoise(di, ['body.nonce', 'body.at'])).toEqual(['body.nonce', 'body.at']);
    expect(ed.addMockNoise(di, ['body.nonce'])).toEqual([]);
    const out = ed.toString();
    const parts = out.split(/^---\n/m);
    expect(parts[0]).toBe(`# yaml-language-server: $schema=../.schema/mocks.schema.json\n${docs[0]}`);
    expect(parts[2]).toBe(docs[2]);
    expect(parts[1]).toContain('noise:\n  req:\n    - body.nonce\n    - body.at\n');
    // noise sits after spec, as Keploy orders the document
    expect(parts[1]!.indexOf('\nnoise:')).toBeGreaterThan(parts[1]!.indexOf('\nspec:'));
    expect(parts[1]!.replace('noise:\n  req:\n    - body.nonce\n    - body.at\n', '')).toBe(docs[1]);
  });

  it('turns a legacy noise list into the map and keeps its values', () => {
    const text = 'version: api.keploy.io/v1beta1\nkind: Http\nname: m\nspec:\n  req: {}\nnoise:\n  - "^x$"\n';
    const ed = new YamlFileEditor('m.yaml', text);
    ed.addMockNoise(0, ['body.ts']);
    expect(parse(ed.toString())).toMatchObject({ noise: { req: ['body.ts'], value: ['^x$'] } });
  });

  it('replaces status, one header and the body; the body stays a pretty block scalar', () => {
    const text = tlsrecTestFile();
    const ed = new YamlFileEditor('t.yaml', text);
    ed.replaceResponse({
      status: 201,
      setHeaders: [['etag', 'W/"new"']],
      removeHeaders: ['Content-Length'],
      body: {
        bytes: Buffer.from('{"id":"2","user":{"name":"Ada","plan":"enterprise"}}'),
        contentType: 'application/json',
      },
    });
    const out = ed.toString();
    expect(out).toContain('# hand comment: keep me');
    expect(out).toContain('body.id: [] # the id is random');
    expect(out).toContain('    status_code: 201\n');
    expect(out).toContain('    status_message: Created\n');
    expect(out).toContain('ETag: W/"new"'); // the recorded spelling of the name is kept
    expect(out).not.toContain('Content-Length');
    expect(out).toContain(
      '    body: |-\n      {\n        "id": "2",\n        "user": {\n          "name": "Ada",\n          "plan": "enterprise"\n        }\n      }\n',
    );
    // header order: Content-Type still first
    const v = parse(out) as { spec: { resp: { header: Record<string, string> } } };
    expect(Object.keys(v.spec.resp.header)[0]).toBe('Content-Type');
  });

  it('replaced bodies read back exactly, whatever they hold (JSON, odd text, binary, empty), at 2 and 4 spaces', () => {
    const bodies: Array<[string, Buffer]> = [
      ['application/json', Buffer.from('{"big":12345678901234567890,"s":"a\\nb \\u00e9","arr":[1,{"x":[]}],"e":{}}')],
      ['text/plain', Buffer.from('line one  \r\nline two\n\n  indented\n')],
      ['text/plain', Buffer.from('   leading blanks and no final newline')],
      ['application/octet-stream', Buffer.from([0, 1, 2, 250, 251, 252, 253, 254, 255])],
      ['text/plain', Buffer.from('\u2028 separators \u0085 and a tab\t')],
      ['application/json', Buffer.alloc(0)],
    ];
    const keploy = readFileSync('keploy-tests/test-set-0/tests/test-1.yaml', 'utf8');
    for (const source of [tlsrecTestFile(), keploy]) {
      for (const [contentType, bytes] of bodies) {
        const root = tmp();
        const file = join(root, 's', 'tests', 'test-1.yaml');
        cpSync('keploy-tests/test-set-0/tests', join(root, 's', 'tests'), { recursive: true });
        writeFileSync(file, source);
        const ed = YamlFileEditor.open(file);
        ed.replaceResponse({ setHeaders: [['Content-Type', contentType]], body: { bytes, contentType } });
        ed.save();
        const t = loadTestSets(root)[0]!.tests.find((x) => x.file === file)!;
        // JSON is stored pretty and read back minified: the input here is minified already
        const want = bytes;
        expect(
          t.expected.body.bytes.equals(want),
          `${contentType} ${JSON.stringify(bytes.toString('latin1'))} in ${source === keploy ? 'keploy' : 'tlsrec'} file`,
        ).toBe(true);
      }
    }
  });

  it('a file nobody edited is not written, an edited one loads with the reader', () => {
    const root = tmp();
    cpSync('keploy-tests/test-set-0', join(root, 'set'), { recursive: true });
    const file = join(root, 'set', 'tests', 'test-1.yaml');
    const before = readFileSync(file, 'utf8');
    const ed = YamlFileEditor.open(file);
    expect(ed.addTestNoise(['header.Date'])).toEqual([]);
    expect(ed.save()).toBe(false);
    expect(readFileSync(file, 'utf8')).toBe(before);
    ed.addTestNoise(['body.note']);
    expect(ed.save()).toBe(true);
    const [set] = loadTestSets(root);
    const t = set!.tests.find((x) => x.file === file)!;
    expect(t.noise.map((r) => r.key)).toEqual(['header.Date', 'body.note']);
  });

  it('refuses a file with a YAML syntax error', () => {
    const root = tmp();
    const f = join(root, 'bad.yaml');
    writeFileSync(f, 'a: [\n');
    expect(() => YamlFileEditor.open(f)).toThrow(/syntax error/);
  });
});
