// --update writes the app's new answer with the file's references kept and new secrets as references.

import { describe, expect, it } from 'vitest';
import type { BodyValue } from '../src/format/types.js';
import { RecordingRefs } from '../src/format/variables.js';
import { answerBodyForFile, keepBodyReferences, keepHeaderReferences } from '../src/replay/update-refs.js';

const json = (v: unknown): BodyValue => ({ bytes: Buffer.from(JSON.stringify(v)), kind: 'json' });
const refs = () => new RecordingRefs({ redact: true });

describe('keepBodyReferences', () => {
  it('puts the recorded reference back where the app answered a value that fits it', () => {
    const recorded = json({ token: '{{ .token }}', auth: 'Bearer {{ .token }}', user: { plan: 'pro' }, n: 1 });
    const actual = Buffer.from(
      '{"token":"t-fresh-123","auth":"Bearer t-fresh-123","user":{"plan":"enterprise"},"n":12345678901234567890}',
    );
    const out = JSON.parse(keepBodyReferences(recorded, actual).toString()) as Record<string, unknown>;
    expect(out).toMatchObject({ token: '{{ .token }}', auth: 'Bearer {{ .token }}', user: { plan: 'enterprise' } });
    // the rest of the answer is the app's own text (a big number keeps its digits)
    expect(keepBodyReferences(recorded, actual).toString()).toContain('"n":12345678901234567890');
  });

  it('leaves the answer alone when the file has no reference, or the value no longer fits one', () => {
    const actual = Buffer.from('{"token":"abc"}');
    expect(keepBodyReferences(json({ token: 'old' }), actual)).toBe(actual);
    const prefixed = json({ auth: 'Bearer {{ .token }}' });
    const other = Buffer.from('{"auth":"Basic xyz"}');
    expect(keepBodyReferences(prefixed, other).toString()).toBe('{"auth":"Basic xyz"}');
  });
});

describe('keepHeaderReferences', () => {
  it('keeps a header reference that fits, by name in any case', () => {
    expect(
      keepHeaderReferences(
        [
          ['X-Session', '{{ .session }}'],
          ['etag', 'a'],
        ],
        [
          ['x-session', 's2'],
          ['etag', 'b'],
        ],
      ),
    ).toEqual([
      ['x-session', '{{ .session }}'],
      ['etag', 'b'],
    ]);
  });
});

describe('answerBodyForFile', () => {
  it('a secret-named field new in the answer is written as a captured variable, a credential format as a secret reference', () => {
    const secretsSeen: string[] = [];
    const r = new RecordingRefs({ redact: true, onSecret: (name) => secretsSeen.push(name) });
    const actual = Buffer.from(
      '{"access_token":"zq81-fresh-value-77","note":"key AKIAIOSFODNN7EXAMPLE inside","plan":"pro"}',
    );
    const out = answerBodyForFile(json({ plan: 'basic' }), actual, 'application/json', r).toString();
    expect(out).not.toContain('zq81-fresh-value-77');
    expect(out).not.toContain('AKIAIOSFODNN7EXAMPLE');
    expect(JSON.parse(out)).toMatchObject({ access_token: '{{ .access_token }}', plan: 'pro' });
    expect(out).toMatch(/key \{\{ \.secret\.\w+ \}\} inside/);
    expect(secretsSeen).toHaveLength(1);
  });

  it('a binary answer is written as the app sent it', () => {
    const bytes = Buffer.from([0xff, 0xd8, 0xff, 0x00, 0x41]);
    expect(answerBodyForFile({ bytes: Buffer.from('x'), kind: 'binary' }, bytes, 'image/jpeg', refs())).toBe(bytes);
  });
});
