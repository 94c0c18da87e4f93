// Writes N Keploy-format test files (api.keploy.io/v1beta1, kind: Http) for servers/replay-app.mjs
// into DIR/test-set-0/tests/, and a tlsrec.yaml with the app port. The replay benchmarks use these
// instead of a recording, so they measure `tlsrec test` alone.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function genTests(root, n, port) {
  const dir = join(root, 'tlsrec', 'test-set-0', 'tests');
  mkdirSync(dir, { recursive: true });
  for (let i = 1; i <= n; i++) {
    const body = JSON.stringify({ id: i, name: `item-${i}` });
    writeFileSync(
      join(dir, `test-${i}.yaml`),
      `version: api.keploy.io/v1beta1
kind: Http
name: test-${i}
spec:
    metadata: {}
    req:
        method: GET
        proto_major: 1
        proto_minor: 1
        url: http://127.0.0.1:${port}/item?id=${i}
        url_params:
            id: "${i}"
        header:
            Accept: '*/*'
            Host: 127.0.0.1:${port}
            User-Agent: bench/1
        body: ""
        timestamp: 2026-11-25T15:06:35.11734502Z
    resp:
        status_code: 200
        header:
            Content-Length: "${Buffer.byteLength(body)}"
            Content-Type: application/json
        body: '${body}'
        status_message: OK
        proto_major: 0
        proto_minor: 0
        timestamp: 2026-11-25T15:06:35.19871237Z
    objects: []
    assertions:
        noise:
            header.Date: []
    created: 1795705595
`,
    );
  }
  writeFileSync(join(root, 'tlsrec.yaml'), `appPort: ${port}\n`);
  return join(root, 'tlsrec');
}
