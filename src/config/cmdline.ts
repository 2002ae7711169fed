// Command-line and environment handling with the rules of Go's `flag` package and etcd's pkg/flags:
//  - `-f`, `--f`, `-f=v`, `--f=v`, and `-f v` / `--f v` for non-boolean flags; booleans take `=v` only;
//  - parsing stops at the first non-flag argument or after `--`; etcd rejects any leftover argument;
//  - `-h`/`-help`/`--help` (any value) asks for help as soon as it is reached;
//  - a repeated flag overrides the earlier value (feature gates and v2-deprecation accumulate);
//  - every flag --foo-bar can come from ETCD_FOO_BAR, but setting both is an error (etcd exits 1).
import { ConfigError } from './errors';
import { FLAG_BY_NAME, FLAGS, flagToEnv, isBoolKind } from './flags';
import { type FlagValue, parseFlagValue } from './values';

export interface ArgvScan {
  help: boolean;
  /** Flag values in the order given (already typed; repeats folded). */
  values: Map<string, FlagValue>;
  /** Flag names given on the command line. */
  given: Set<string>;
  positional: string[];
}

/** FlagSet.Parse. Throws ConfigError (exit code 2) for syntax errors, as Go's flag package does. */
/** With `ignoreHelp`, -h/--help are skipped instead of ending the parse (for loadConfig). */
export function scanArgv(argv: readonly string[], opts: { ignoreHelp?: boolean } = {}): ArgvScan {
  const values = new Map<string, FlagValue>();
  const given = new Set<string>();
  let args = [...argv];
  while (args.length > 0) {
    const s = args[0];
    if (s.length < 2 || s[0] !== '-') break;
    let numMinuses = 1;
    if (s[1] === '-') {
      numMinuses = 2;
      if (s.length === 2) {
        args = args.slice(1);
        break;
      }
    }
    let name = s.slice(numMinuses);
    if (name.length === 0 || name[0] === '-' || name[0] === '=') {
      throw new ConfigError(`bad flag syntax: ${s}`, { exitCode: 2 });
    }
    args = args.slice(1);
    let hasValue = false;
    let value = '';
    const eq = name.indexOf('=', 1);
    if (eq >= 0) {
      value = name.slice(eq + 1);
      hasValue = true;
      name = name.slice(0, eq);
    }
    const spec = FLAG_BY_NAME.get(name);
    if (!spec) {
      if (name === 'help' || name === 'h') {
        if (opts.ignoreHelp) continue;
        return { help: true, values, given, positional: [] };
      }
      throw new ConfigError(`flag provided but not defined: --${name} (see --help)`, { exitCode: 2, flag: name });
    }
    if (isBoolKind(spec.kind)) {
      if (!hasValue) value = 'true';
    } else {
      if (!hasValue && args.length > 0) {
        value = args[0];
        args = args.slice(1);
        hasValue = true;
      }
      if (!hasValue) throw new ConfigError(`flag needs an argument: --${name}`, { exitCode: 2, flag: name });
    }
    const v = parseFlagValue(spec, value, values.get(name));
    if (!v.ok) {
      throw new ConfigError(`invalid value ${JSON.stringify(value)} for flag --${name}: ${v.reason}`, {
        exitCode: 2,
        flag: name,
      });
    }
    values.set(name, v.value);
    given.add(name);
  }
  return { help: false, values, given, positional: args };
}

export interface EnvResult {
  /** Flags set from ETCD_* variables. */
  fromEnv: Set<string>;
  warnings: string[];
}

/**
 * flags.SetFlagsFromEnv + verifyEnv for the command-line path: fills `values` from ETCD_* variables for flags
 * not given on the command line. Conflicts (a variable for a flag also given on the command line) are errors,
 * checked before bad variable values, as in etcd.
 */
export function applyEnv(
  env: Record<string, string | undefined>,
  scan: ArgvScan,
): EnvResult {
  const warnings: string[] = [];
  const fromEnv = new Set<string>();
  const used = new Set<string>();
  let firstError: ConfigError | undefined;

  const versionVal = env['ETCD_VERSION'];
  if (versionVal !== undefined && versionVal !== '') {
    warnings.push('cannot set special environment variable ETCD_VERSION; it is ignored');
    used.add('ETCD_VERSION');
  }

  const sorted = [...FLAGS].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const spec of sorted) {
    const key = flagToEnv(spec.name);
    if (scan.given.has(spec.name) || used.has(key)) continue;
    const val = env[key];
    if (val === undefined || val === '') continue;
    used.add(key);
    const v = parseFlagValue(spec, val, scan.values.get(spec.name));
    if (!v.ok) {
      firstError ??= new ConfigError(`invalid value ${JSON.stringify(val)} for ${key}: ${v.reason}`, {
        flag: spec.name,
      });
      continue;
    }
    scan.values.set(spec.name, v.value);
    fromEnv.add(spec.name);
    if (spec.kind === 'ignored') warnings.push(`${key} sets --${spec.name}, which is no longer supported; it is ignored`);
  }

  const givenKeys = new Map([...scan.given].map((n) => [flagToEnv(n), n]));
  const flagKeys = new Set(FLAGS.map((f) => flagToEnv(f.name)));
  for (const key of Object.keys(env).sort()) {
    if (env[key] === undefined || used.has(key)) continue;
    const shadowed = givenKeys.get(key);
    if (shadowed !== undefined) {
      throw new ConfigError(
        `conflicting environment variable ${key} is shadowed by command-line flag --${shadowed} (unset the variable or drop the flag)`,
        { flag: shadowed },
      );
    }
    if (!key.startsWith('ETCD_')) continue;
    if (flagKeys.has(key) || key === 'ETCD_VERSION') {
      warnings.push(`environment variable ${key} is empty; it is ignored`);
    } else {
      warnings.push(`unrecognized environment variable ${key}; it is ignored`);
    }
  }
  if (firstError) throw firstError;
  return { fromEnv, warnings };
}

/** True when etcd would print its help for these arguments: -h/-help/--help reached before any parse error. */
export function wantsHelp(argv: readonly string[]): boolean {
  try {
    return scanArgv(argv).help;
  } catch {
    return false;
  }
}

/** True when etcd would print its version: the arguments parse, leave no positional argument, and set --version. */
export function wantsVersion(argv: readonly string[]): boolean {
  try {
    const scan = scanArgv(argv);
    return !scan.help && scan.positional.length === 0 && scan.values.get('version') === true;
  } catch {
    return false;
  }
}
