// Failures that name the secret a test needed and nobody supplied, put before the test's other failures.

import type { TestCase } from '../format/types.js';
import { secretNameFor } from '../format/secrets.js';
import type { TestReport } from './report/index.js';
import type { SecretStore } from './secrets.js';

/**
 * Needed secrets nobody supplied: the failure says which variable to set, first. Headers written
 * as [REDACTED] (files recorded before references existed) are named too, with what to write instead.
 */
export function withSecretHint(
  tr: TestReport,
  missing: string[],
  secrets: SecretStore,
  recorded: TestCase,
): TestReport {
  if (tr.passed) return tr;
  const hints = missing.map((name) => ({
    kind: 'request' as const,
    expected: `secret ${name}`,
    actual: 'not supplied',
    message: `${tr.name}: sends secret ${name}, which is not set: ${secrets.hint(name)}`,
  }));
  for (const [name] of recorded.request.headers.filter(([, v]) => v === '[REDACTED]')) {
    const ref = `{{ .secret.${secretNameFor(name)} }}`;
    hints.push({
      kind: 'request' as const,
      expected: `header ${name}`,
      actual: '[REDACTED]',
      message: `${tr.name}: header ${name} was recorded as [REDACTED] and is sent so: write ${ref} there and ${secrets.hint(secretNameFor(name))}, or record again`,
    });
  }
  return hints.length === 0 ? tr : { ...tr, failures: [...hints, ...tr.failures] };
}
