// Parsers for the value syntaxes etcd's flags accept, which are Go's: strconv integers (base 0, so
// `0x10`, `0o17`, `017`, `0b101` and `1_000` are valid), strconv booleans, and time.Duration strings.
// Each parser returns either a value or a short reason; callers turn the reason into a one-line
// ConfigError that names the flag.

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = <T>(reason: string): Parsed<T> => ({ ok: false, reason });

// ---------------------------------------------------------------------------------------------
// Booleans (strconv.ParseBool)

const TRUE_WORDS = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const FALSE_WORDS = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

export function parseGoBool(s: string): Parsed<boolean> {
  if (TRUE_WORDS.has(s)) return ok(true);
  if (FALSE_WORDS.has(s)) return ok(false);
  return fail('expected a boolean (true or false)');
}

// ---------------------------------------------------------------------------------------------
// Integers (strconv.ParseUint / ParseInt with base 0)

export type IntKind = 'uint' | 'uint32' | 'uint64' | 'int' | 'int64';

const RANGES: Record<IntKind, { min: bigint; max: bigint; signed: boolean }> = {
  uint: { min: 0n, max: (1n << 64n) - 1n, signed: false },
  uint64: { min: 0n, max: (1n << 64n) - 1n, signed: false },
  uint32: { min: 0n, max: (1n << 32n) - 1n, signed: false },
  int: { min: -(1n << 63n), max: (1n << 63n) - 1n, signed: true },
  int64: { min: -(1n << 63n), max: (1n << 63n) - 1n, signed: true },
};

function underscoreOK(s: string): boolean {
  // Go's rule: underscores may only separate digits (a base prefix counts as a digit).
  let saw = '^';
  let i = 0;
  if (s.length >= 1 && (s[0] === '-' || s[0] === '+')) s = s.slice(1);
  let hex = false;
  if (s.length >= 2 && s[0] === '0' && 'bBoOxX'.includes(s[1])) {
    i = 2;
    saw = '0';
    hex = s[1] === 'x' || s[1] === 'X';
  }
  for (; i < s.length; i++) {
    const c = s[i];
    if ((c >= '0' && c <= '9') || (hex && /[a-fA-F]/.test(c))) {
      saw = '0';
      continue;
    }
    if (c === '_') {
      if (saw !== '0') return false;
      saw = '_';
      continue;
    }
    if (saw === '_') return false;
    saw = '!';
  }
  return saw !== '_';
}

function parseUnsignedBase0(s: string): bigint | null {
  if (s.length === 0) return null;
  let base = 10;
  let digits = s;
  if (s[0] === '0') {
    if (s.length >= 3 && (s[1] === 'b' || s[1] === 'B')) {
      base = 2;
      digits = s.slice(2);
    } else if (s.length >= 3 && (s[1] === 'o' || s[1] === 'O')) {
      base = 8;
      digits = s.slice(2);
    } else if (s.length >= 3 && (s[1] === 'x' || s[1] === 'X')) {
      base = 16;
      digits = s.slice(2);
    } else {
      base = 8;
      digits = s.slice(1);
    }
  }
  let n = 0n;
  let sawUnderscore = false;
  const b = BigInt(base);
  for (const c of digits) {
    if (c === '_') {
      sawUnderscore = true;
      continue;
    }
    const d = parseInt(c, 36);
    if (Number.isNaN(d) || d >= base) return null;
    n = n * b + BigInt(d);
  }
  if (sawUnderscore && !underscoreOK(s)) return null;
  return n;
}

/** Parses like Go's strconv with base 0 and checks the range of the Go type `kind`.
 *  Values beyond JavaScript's safe-integer range are rejected (they never make sense for etcd's flags). */
export function parseGoInt(s: string, kind: IntKind): Parsed<number> {
  const range = RANGES[kind];
  const what = range.signed ? 'an integer' : 'an unsigned integer';
  let body = s;
  let neg = false;
  if (range.signed && (s[0] === '+' || s[0] === '-')) {
    neg = s[0] === '-';
    body = s.slice(1);
  }
  const mag = parseUnsignedBase0(body);
  if (mag === null) return fail(`expected ${what}`);
  const v = neg ? -mag : mag;
  if (v < range.min || v > range.max) return fail(`value out of range for ${what} (${kind})`);
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
    return fail(`value too large (etcd-ts accepts at most ${Number.MAX_SAFE_INTEGER})`);
  }
  return ok(Number(v));
}

// ---------------------------------------------------------------------------------------------
// Durations (time.ParseDuration). Values are returned in nanoseconds as bigint; helpers convert.

const UNIT_NS: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  'µs': 1_000n, // U+00B5 micro sign
  'μs': 1_000n, // U+03BC Greek mu
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

const MAX_DURATION_NS = (1n << 63n) - 1n;

export function parseGoDurationNs(input: string): Parsed<bigint> {
  const quoted = JSON.stringify(input);
  let s = input;
  let neg = false;
  if (s !== '' && (s[0] === '-' || s[0] === '+')) {
    neg = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return ok(0n);
  if (s === '') return fail(`time: invalid duration ${quoted}`);
  let total = 0n;
  while (s !== '') {
    // integer part
    const m = /^([0-9]*)(?:\.([0-9]*))?/.exec(s);
    const intPart = m?.[1] ?? '';
    const fracPart = m?.[2];
    if (intPart === '' && (fracPart === undefined || fracPart === '')) {
      return fail(`time: invalid duration ${quoted}`);
    }
    s = s.slice(m![0].length);
    const u = /^[^0-9.]+/.exec(s);
    if (!u) return fail(`time: missing unit in duration ${quoted}`);
    const unit = u[0];
    s = s.slice(unit.length);
    const scale = UNIT_NS[unit];
    if (scale === undefined) return fail(`time: unknown unit ${JSON.stringify(unit)} in duration ${quoted}`);
    let v = BigInt(intPart === '' ? '0' : intPart) * scale;
    if (fracPart) {
      // fractional part, truncated toward zero at nanosecond precision like Go
      const num = BigInt(fracPart);
      const den = 10n ** BigInt(fracPart.length);
      v += (num * scale) / den;
    }
    total += v;
    if (total > MAX_DURATION_NS + (neg ? 1n : 0n)) return fail(`time: invalid duration ${quoted}`);
  }
  return ok(neg ? -total : total);
}

export const nsToMs = (ns: bigint): number => Number(ns) / 1e6;
export const msToNs = (ms: number): bigint => BigInt(Math.round(ms * 1e6));

/** Formats like Go's time.Duration.String(): "1h0m0s", "1m30s", "500ms", "1.5µs", "0s". */
export function formatGoDuration(nsIn: bigint | number): string {
  let ns = typeof nsIn === 'bigint' ? nsIn : msToNs(nsIn);
  if (ns === 0n) return '0s';
  const neg = ns < 0n;
  if (neg) ns = -ns;
  const frac = (v: bigint, digits: number): string => {
    // v is in units of 10^-digits; print with trailing zeros removed
    const div = 10n ** BigInt(digits);
    const whole = v / div;
    const rest = (v % div).toString().padStart(digits, '0').replace(/0+$/, '');
    return rest === '' ? whole.toString() : `${whole}.${rest}`;
  };
  let out: string;
  if (ns < 1_000_000_000n) {
    if (ns < 1_000n) out = `${ns}ns`;
    else if (ns < 1_000_000n) out = `${frac(ns, 3)}µs`;
    else out = `${frac(ns, 6)}ms`;
  } else {
    const h = ns / 3_600_000_000_000n;
    let rem = ns % 3_600_000_000_000n;
    const m = rem / 60_000_000_000n;
    rem = rem % 60_000_000_000n;
    const sec = frac(rem, 9) + 's';
    if (h > 0n) out = `${h}h${m}m${sec}`;
    else if (m > 0n) out = `${m}m${sec}`;
    else out = sec;
  }
  return (neg ? '-' : '') + out;
}
