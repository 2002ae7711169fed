// `make crds`: writes the CRDs generated from operator/api into crds/ and into the Helm chart's crds/ (which
// Helm installs before the chart's templates), or only into the directory given as the first argument.
// Run from the repository root, after `tsc`: node dist/operator/api/generate-crds.js
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { CRD_FILE, renderCrdYaml } from './crd';

/** The chart's copy of the CRD (a unit test checks it is current, like the one in crds/). */
export const CHART_CRD_FILE = join('charts', 'etcd-ts-operator', 'crds', basename(CRD_FILE));

function main(): void {
  const explicit = process.argv[2];
  const files = explicit !== undefined ? [join(explicit, basename(CRD_FILE))] : [CRD_FILE, CHART_CRD_FILE];
  const yaml = renderCrdYaml();
  for (const file of files) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, yaml);
    process.stdout.write(`wrote ${file}\n`);
  }
}

if (require.main === module) main();
