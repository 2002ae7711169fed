/**
 * A configuration error. The message is one line naming the flag, variable or config-file key and what
 * is accepted. `exitCode` is what etcd 3.6 exits with for the same mistake:
 *  - 2: the command line itself is malformed (unknown flag, bad flag syntax, a value the flag cannot parse,
 *       a flag missing its argument) — Go's flag package prints the error plus usage and exits 2; etcd also
 *       exits 2 (by panicking) on an unknown --log-level;
 *  - 1: everything else (stray positional argument, bad ETCD_* value, flag/env conflict, config-file errors,
 *       validation errors such as the election-timeout rule).
 */
export class ConfigError extends Error {
  readonly exitCode: 1 | 2;
  /** Flag name (without dashes) or config-file key the error is about, when there is one. */
  readonly flag?: string;

  constructor(message: string, opts: { exitCode?: 1 | 2; flag?: string } = {}) {
    super(message.replace(/\s*\n\s*/g, ' '));
    this.name = 'ConfigError';
    this.exitCode = opts.exitCode ?? 1;
    this.flag = opts.flag;
  }
}
