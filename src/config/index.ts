/**
 * etcd 3.6's configuration surface as one typed, validated Config.
 *
 * Sources, as in etcd 3.6.16:
 *  - command-line flags in Go `flag` syntax (`-f`, `--f`, `--f=v`, `--f v`; booleans `--f` / `--f=false`);
 *  - for every flag `--foo-bar`, the environment variable `ETCD_FOO_BAR` (giving a flag both ways is an error,
 *    as in etcd; unknown ETCD_* variables are reported as warnings; ETCDCTL_* variables are not ours);
 *  - or a YAML file named by `--config-file` / `ETCD_CONFIG_FILE`, in which case every other flag and
 *    variable is ignored (see file.ts for the YAML value rules: durations there are integer nanoseconds).
 *
 * Entry points:
 *  - `parseCommandLine(argv, env)` returns `{action: 'help'}`, `{action: 'version'}` or
 *    `{action: 'run', config, warnings}` — the discriminated form a `main` wants;
 *  - `wantsHelp(argv)` / `wantsVersion(argv)` answer the same questions on their own;
 *  - `loadConfig(argv, env)` returns `{config, warnings}` and ignores -h/--help and --version.
 * All three throw `ConfigError` (one-line message naming the flag; `exitCode` 2 for a malformed command line,
 * 1 otherwise — what etcd exits with). `argv` excludes the program name (process.argv.slice(2)).
 */
import { readFileSync } from 'node:fs';
import { buildConfig, type LoadedConfig } from './build';
import { applyEnv, scanArgv, wantsHelp, wantsVersion } from './cmdline';
import { ConfigError } from './errors';
import { readConfigFile } from './file';
import { FLAG_BY_NAME, flagToEnv } from './flags';
import { usageText } from './usage';

export { ConfigError } from './errors';
export type { LoadedConfig } from './build';
export { configSchema, urlSchema, type Config } from './schema';
export type { ParsedUrl, InitialClusterMember } from './urls';
export type { AuthTokenSpec } from './authtoken';
export type { FeatureName } from './features';
export { FEATURE_GATES } from './features';
export { FLAGS, type FlagSpec } from './flags';
export {
  effectiveQuotaBackendBytes,
  effectiveSettings,
  type EffectiveSettings,
  DEFAULT_QUOTA_BYTES,
  MAX_QUOTA_BYTES,
} from './effective';
export { parseGoDurationNs, formatGoDuration } from './goparse';
export { usageText, wantsHelp, wantsVersion };

export type CommandLine = { action: 'help' } | { action: 'version' } | ({ action: 'run' } & LoadedConfig);

export interface LoadOptions {
  /** Reads the config file (default: fs.readFileSync(path, 'utf8')). */
  readFile?: (path: string) => string;
}

export function parseCommandLine(
  argv: readonly string[],
  env: Record<string, string | undefined>,
  opts: LoadOptions = {},
): CommandLine {
  const scan = scanArgv(argv);
  if (scan.help) return { action: 'help' };
  if (scan.positional.length > 0) {
    throw new ConfigError(`${JSON.stringify(scan.positional[0])} is not a valid flag (etcd-ts takes no positional arguments)`);
  }
  if (scan.values.get('version') === true) return { action: 'version' };
  return { action: 'run', ...resolve(scan, env, opts) };
}

export function loadConfig(
  argv: readonly string[],
  env: Record<string, string | undefined>,
  opts: LoadOptions = {},
): LoadedConfig {
  const scan = scanArgv(argv, { ignoreHelp: true });
  if (scan.positional.length > 0) {
    throw new ConfigError(`${JSON.stringify(scan.positional[0])} is not a valid flag (etcd-ts takes no positional arguments)`);
  }
  return resolve(scan, env, opts);
}

function resolve(
  scan: ReturnType<typeof scanArgv>,
  env: Record<string, string | undefined>,
  opts: LoadOptions,
): LoadedConfig {
  const warnings: string[] = [];
  let configFile = scan.given.has('config-file') ? (scan.values.get('config-file') as string) : '';
  if (configFile === '') configFile = env['ETCD_CONFIG_FILE'] ?? '';

  if (configFile !== '') {
    let text: string;
    try {
      text = (opts.readFile ?? ((p: string) => readFileSync(p, 'utf8')))(configFile);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new ConfigError(
        `cannot read config file ${configFile} (from ${scan.given.has('config-file') ? '--config-file' : 'ETCD_CONFIG_FILE'}): ${code ?? (e as Error).message}`,
        { flag: 'config-file' },
      );
    }
    const file = readConfigFile(configFile, text);
    const ignored = [
      ...[...scan.given].filter((n) => n !== 'config-file').map((n) => `--${n}`),
      ...Object.keys(env)
        .filter((k) => k.startsWith('ETCD_') && k !== 'ETCD_CONFIG_FILE' && env[k] !== undefined)
        .sort(),
    ];
    if (ignored.length > 0) {
      warnings.push(
        `configuration loaded from ${configFile}; other command-line flags and environment variables are ignored: ${ignored.join(', ')}`,
      );
    }
    return buildConfig({
      source: 'file',
      configFile,
      values: file.values,
      explicit: file.explicit,
      clientCertAllowedCn: file.clientCertAllowedCn,
      clientSkipClientSanVerification: file.clientSkipClientSanVerification,
      warnings: [...warnings, ...file.warnings],
    });
  }

  for (const n of scan.given) {
    if (FLAG_BY_NAME.get(n)?.kind === 'ignored') warnings.push(`flag --${n} is no longer supported; it is ignored`);
  }
  const fromEnv = applyEnv(env, scan);
  warnings.push(...fromEnv.warnings);
  const explicit = new Set([...scan.given, ...fromEnv.fromEnv]);
  return buildConfig({
    source: 'cli',
    configFile: '',
    values: scan.values,
    explicit,
    clientCertAllowedCn: [],
    clientSkipClientSanVerification: false,
    warnings,
  });
}

/** ETCD_* variable name for a flag name (exported for error messages and docs). */
export { flagToEnv };
