/**
 * Locations of the chart tools test/tools/charts.sh builds (helm, promtool
 * and prometheus), and the chart directory. Tests call helmPath() /
 * promtoolPath() / prometheusPath() and get a clear error naming the make
 * target when a tool is missing or is not the pinned release.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { repoRoot } from './procs';

/** The releases test/tools/charts.sh pins (keep in step with the script). */
export const HELM_VERSION = '4.3.2';
export const PROMETHEUS_VERSION = '3.16.0';

export type ChartTool = 'helm' | 'promtool' | 'prometheus';

/** $ETCD_TS_CHART_TOOLS_DIR, else ${ETCD_TS_CACHE:-~/.cache/etcd-ts}/bin/chart-tools (where charts.sh puts them). */
export function chartToolsDir(): string {
  const explicit = process.env.ETCD_TS_CHART_TOOLS_DIR;
  if (explicit) return explicit;
  const cache = process.env.ETCD_TS_CACHE || path.join(os.homedir(), '.cache', 'etcd-ts');
  return path.join(cache, 'bin', 'chart-tools');
}

// One version probe per tool and process: every test file asks many times.
const verified = new Map<ChartTool, string>();

function versionOf(tool: ChartTool, bin: string): string {
  const args = tool === 'helm' ? ['version', '--template', '{{.Version}}'] : ['--version'];
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 20_000 });
  if (r.error) throw new Error(`${tool} at ${bin} does not run: ${r.error.message}`);
  return `${r.stdout}${r.stderr}`.trim();
}

function chartToolPath(tool: ChartTool): string {
  const cached = verified.get(tool);
  if (cached !== undefined) return cached;
  const bin = path.join(chartToolsDir(), tool);
  // promtool and prometheus print "<name>, version <version> (branch: ...)".
  const wanted = tool === 'helm' ? `v${HELM_VERSION}` : `${tool}, version ${PROMETHEUS_VERSION} `;
  const hint =
    'Run `make chart-tools` (test/tools/charts.sh) to build helm ' +
    `v${HELM_VERSION}, promtool and prometheus ${PROMETHEUS_VERSION} from their Go modules, or set ETCD_TS_CHART_TOOLS_DIR.`;
  try {
    fs.accessSync(bin, fs.constants.X_OK);
  } catch {
    throw new Error(`${tool} not found at ${bin}. ${hint}`);
  }
  const version = versionOf(tool, bin);
  const ok = tool === 'helm' ? version === wanted : version.startsWith(wanted);
  if (!ok) throw new Error(`${bin} reports "${version.split('\n')[0]}", expected ${wanted.trim()}. ${hint}`);
  verified.set(tool, bin);
  return bin;
}

/** Absolute path of helm v4 (built by test/tools/charts.sh); throws with instructions when missing. */
export function helmPath(): string {
  return chartToolPath('helm');
}

/** Absolute path of promtool (built by test/tools/charts.sh); throws with instructions when missing. */
export function promtoolPath(): string {
  return chartToolPath('promtool');
}

/** Absolute path of the Prometheus server (built by test/tools/charts.sh); throws with instructions when missing. */
export function prometheusPath(): string {
  return chartToolPath('prometheus');
}

/** The operator's Helm chart in this repository. */
export function chartDir(): string {
  return path.join(repoRoot(), 'charts', 'etcd-ts-operator');
}
