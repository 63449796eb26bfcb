/** openapi/types.ts is generated from openapi/stratus.yaml; this fails when someone forgot `npm run gen:api`. */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

test('openapi/types.ts is up to date with openapi/stratus.yaml', () => {
  const root = path.join(__dirname, '..', '..');
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'stratus-gen-')), 'types.ts');
  execFileSync(process.execPath, [path.join(path.dirname(require.resolve('openapi-typescript/package.json')), 'bin', 'cli.js'), 'openapi/stratus.yaml', '-o', out], {
    cwd: root,
    stdio: 'ignore',
  });
  const fresh = fs.readFileSync(out, 'utf8');
  const committed = fs.readFileSync(path.join(root, 'openapi', 'types.ts'), 'utf8');
  if (fresh !== committed) throw new Error('openapi/types.ts is stale: run `npm run gen:api` and commit the result');
});
