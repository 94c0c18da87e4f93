// `tlsrec test --update`: a normal run, then each failing test's file takes what the app answered
// for the parts that failed — the status, the headers that differed, the body — edited in place
// (src/format/edit.ts), so comments, key order, noise entries and the block-scalar body survive and
// a passing test's file is not written at all. A test during which a mock missed answered from a
// 502, not from the app's real logic: it is not updated, and the run exits 1. Secret headers are
// written redacted, with noise so they are not compared; references in the file ({{ .token }})
// stay where the app's value still fits them, and secrets in a new body become references as
// record writes them (update-refs.ts).

import { relative } from 'node:path';
import { YamlFileEditor, type NewResponse } from '../format/edit.js';
import { isSecretHeader, REDACTED } from '../format/redact.js';
import type { TestCase } from '../format/types.js';
import type { HeaderList } from '../model/exchange.js';
import { firstHeader } from '../model/headers.js';
import type { ActualResponse } from './compare.js';
import { formatMiss } from './mocks/matcher.js';
import type { TestReport } from './report/index.js';
import { runTests, type TestOptions, type TestRunResult } from './run-tests.js';
import { answerBodyForFile, keepHeaderReferences } from './update-refs.js';
import { RecordingRefs } from '../format/variables.js';
import { readSecretsFile, writeSecret } from '../format/secrets-file.js';
import { hasRef } from '../format/templates.js';

export interface UpdateOutcome {
  test: string;
  file: string;
  updated: boolean;
  /** What changed ("status 200 -> 201", "header etag", "body $.user.plan"), or why it was not updated. */
  detail: string[];
}

export interface UpdateResult extends TestRunResult {
  outcomes: UpdateOutcome[];
}

/** The edit for one failing test, from its failures and the app's answer. Pure. */
export function plannedUpdate(
  report: TestReport,
  response: ActualResponse,
  redactHeaders: readonly string[],
  expectedHeaders: HeaderList = [],
): { change: NewResponse; noise: string[]; detail: string[] } {
  // A header the file holds redacted stays redacted, whatever the redaction settings are now.
  const wasRedacted = new Set(expectedHeaders.filter(([, v]) => v === REDACTED).map(([n]) => n.toLowerCase()));
  const change: NewResponse = {};
  const noise: string[] = [];
  const detail: string[] = [];
  const headerNames = new Set<string>();
  const bodyPaths: string[] = [];
  for (const f of report.failures) {
    if (f.kind === 'status') {
      change.status = response.status;
      detail.push(`status ${f.expected} -> ${response.status}`);
    } else if (f.kind === 'header' && f.path) headerNames.add(f.path.toLowerCase());
    else if (f.kind === 'body') {
      if (f.path && !bodyPaths.includes(f.path)) bodyPaths.push(f.path);
    }
  }
  if (headerNames.size > 0) {
    const set: HeaderList = [];
    const remove: string[] = [];
    for (const name of headerNames) {
      const values = response.headers.filter(([n]) => n.toLowerCase() === name);
      if (values.length === 0) {
        remove.push(name);
        continue;
      }
      for (const [n, v] of values) {
        if (hasRef(v))
          set.push([n, v]); // the file's own reference, kept (keepHeaderReferences)
        else if (isSecretHeader(n, redactHeaders) || wasRedacted.has(n.toLowerCase())) {
          set.push([n, REDACTED]);
          if (!noise.includes(`header.${n}`)) noise.push(`header.${n}`);
        } else set.push([n, v]);
      }
    }
    if (set.length > 0) change.setHeaders = set;
    if (remove.length > 0) change.removeHeaders = remove;
    detail.push(`header${headerNames.size === 1 ? '' : 's'} ${[...headerNames].join(', ')}`);
  }
  if (report.failures.some((f) => f.kind === 'body')) {
    change.body = { bytes: response.body, contentType: firstHeader(response.headers, 'content-type') };
    const shown = bodyPaths.slice(0, 5).join(', ');
    detail.push(`body${shown ? ` ${shown}` : ''}${bodyPaths.length > 5 ? ` and ${bodyPaths.length - 5} more` : ''}`);
  }
  return { change, noise, detail };
}

export async function updateAndTest(opts: TestOptions): Promise<UpdateResult> {
  const responses = new Map<string, ActualResponse | undefined>();
  const tests = new Map<string, TestCase>();
  for (const s of opts.testSetsLoaded) for (const t of s.tests) tests.set(t.file, t);
  const result = await runTests({
    ...opts,
    onResponse: (test, set, response) => {
      responses.set(test.file, response);
      opts.onResponse?.(test, set, response);
    },
  });
  const outcomes: UpdateOutcome[] = [];
  const config = opts.config;
  for (const set of result.report.sets) {
    // One per set, as record has: a new secret-named field gets the name record would give it.
    const refs = new RecordingRefs({
      redact: true,
      rules: { headers: config.redactHeaders, keys: config.redactKeys ?? [], paths: config.redactPaths ?? [] },
      knownSecrets: config.secretsFile ? readSecretsFile(config.secretsFile) : {},
      ...(config.secretsFile
        ? { onSecret: (name: string, value: string) => writeSecret(config.secretsFile!, name, value) }
        : {}),
    });
    for (const tr of set.tests) {
      if (tr.passed) continue;
      const response = responses.get(tr.file);
      if (tr.mockMisses.length > 0) {
        const why = tr.mockMisses.map((m) => formatMiss(m));
        outcomes.push({
          test: tr.name,
          file: tr.file,
          updated: false,
          detail: [`a mock missed during it, so the app answered from a 502: ${why.join('; ')}`],
        });
        continue;
      }
      if (response === undefined || !tests.has(tr.file)) {
        outcomes.push({ test: tr.name, file: tr.file, updated: false, detail: ['the app gave no response'] });
        continue;
      }
      const recorded = tests.get(tr.file)!.expected;
      const forFile: ActualResponse = {
        ...response,
        headers: keepHeaderReferences(recorded.headers, response.headers),
        body: answerBodyForFile(recorded.body, response.body, firstHeader(response.headers, 'content-type'), refs),
      };
      const plan = plannedUpdate(tr, forFile, config.redactHeaders, recorded.headers);
      const editor = YamlFileEditor.open(tr.file);
      editor.replaceResponse(plan.change);
      if (plan.noise.length > 0) editor.addTestNoise(plan.noise);
      editor.save();
      outcomes.push({ test: tr.name, file: tr.file, updated: true, detail: plan.detail });
    }
  }
  const out = opts.out;
  const updated = outcomes.filter((o) => o.updated).length;
  const refused = outcomes.length - updated;
  for (const o of outcomes) {
    const where = relative(process.cwd(), o.file) || o.file;
    out.write(
      o.updated
        ? `  updated ${o.test} (${where}): ${o.detail.join('; ')}\n`
        : `  not updated ${o.test} (${where}): ${o.detail.join('; ')}\n`,
    );
  }
  out.write(
    outcomes.length === 0
      ? 'update: every test passed; no file changed\n'
      : `update: ${updated} test${updated === 1 ? '' : 's'} updated${refused > 0 ? `, ${refused} not updated (fix the mocks first: tlsrec test --detect-noise, or re-record)` : ''}\n`,
  );
  return { ...result, exitCode: refused > 0 ? 1 : 0, outcomes };
}
