// schema/*.json ship with the package for editors; they must equal the objects the reader uses.
// Regenerate after changing src/format/schemas.ts: UPDATE_SCHEMAS=1 npx vitest run test/format-schema.test.ts
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { schemaFileContents } from '../src/format/schemas.js';

const dir = path.join(import.meta.dirname, '..', 'schema');

describe('shipped JSON Schemas', () => {
  it('schema/ matches src/format/schemas.ts', () => {
    for (const [name, text] of Object.entries(schemaFileContents())) {
      const file = path.join(dir, name);
      if (process.env.UPDATE_SCHEMAS === '1') fs.writeFileSync(file, text);
      expect(fs.readFileSync(file, 'utf8'), `${file} is stale: run with UPDATE_SCHEMAS=1`).toBe(text);
    }
  });
});
