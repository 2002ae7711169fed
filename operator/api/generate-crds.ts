// `make crds`: writes the CRDs generated from operator/api into crds/ (or the directory given as the first
// argument). Run from the repository root, after `tsc`: node dist/operator/api/generate-crds.js
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { CRD_FILE, renderCrdYaml } from './crd';

function main(): void {
  const dir = process.argv[2] ?? 'crds';
  mkdirSync(dir, { recursive: true });
  const file = join(dir, basename(CRD_FILE));
  writeFileSync(file, renderCrdYaml());
  process.stdout.write(`wrote ${file}\n`);
}

main();
