/**
 * A strict parser for the Prometheus text exposition format (version 0.0.4), what etcd and etcd-ts serve on
 * /metrics, and small queries over its result (label names of a family, histogram bucket bounds, sums of
 * series). Written for tests that compare two servers' metrics: anything malformed throws with the line number
 * instead of being skipped, so a broken /metrics cannot pass a comparison by accident.
 */

export type FamilyType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  /** The sample's own name (e.g. `foo_bucket` for a bucket of histogram `foo`). */
  name: string;
  labels: Record<string, string>;
  value: number;
  timestampMs?: number;
}

export interface MetricFamily {
  name: string;
  type: FamilyType;
  help?: string;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const TYPES: readonly FamilyType[] = ['counter', 'gauge', 'histogram', 'summary', 'untyped'];

class ParseError extends Error {
  constructor(lineNo: number, line: string, what: string) {
    super(`exposition line ${lineNo}: ${what}: ${JSON.stringify(line.length > 200 ? line.slice(0, 200) + '...' : line)}`);
  }
}

/**
 * A sample value as Prometheus reads it (Go's strconv.ParseFloat): decimal floats, and NaN / Inf / Infinity in
 * any letter case with an optional sign (prom-client prints NaN as "Nan", which Prometheus accepts).
 */
function parseValue(text: string): number | undefined {
  const special = /^([+-]?)(inf|infinity|nan)$/i.exec(text);
  if (special) return special[2].toLowerCase() === 'nan' ? NaN : special[1] === '-' ? -Infinity : Infinity;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) return undefined;
  return Number(text);
}

/** HELP text escapes: `\\` and `\n` only. */
function unescapeHelp(text: string): string {
  return text.replace(/\\(\\|n)/g, (_, c: string) => (c === 'n' ? '\n' : '\\'));
}

/**
 * Parses `{a="x",b="y\"z"}` starting at `pos` (which holds `{`); returns the labels and the index after `}`.
 * Label values may hold `\\`, `\"` and `\n` escapes; a trailing comma before `}` is allowed, as in the format.
 */
function parseLabels(line: string, pos: number, fail: (what: string) => never): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = pos + 1;
  const skipSpaces = () => {
    while (line[i] === ' ' || line[i] === '\t') i++;
  };
  for (;;) {
    skipSpaces();
    if (line[i] === '}') return { labels, end: i + 1 };
    const name = LABEL_NAME.exec(line.slice(i))?.[0];
    if (!name) fail(`bad label name at column ${i + 1}`);
    i += name.length;
    skipSpaces();
    if (line[i] !== '=') fail(`expected '=' after label ${name}`);
    i++;
    skipSpaces();
    if (line[i] !== '"') fail(`expected '"' to open the value of label ${name}`);
    i++;
    let value = '';
    for (;;) {
      if (i >= line.length) fail(`unterminated value of label ${name}`);
      const c = line[i];
      if (c === '"') break;
      if (c === '\\') {
        const next = line[i + 1];
        if (next === '\\') value += '\\';
        else if (next === '"') value += '"';
        else if (next === 'n') value += '\n';
        else fail(`bad escape \\${next ?? ''} in the value of label ${name}`);
        i += 2;
        continue;
      }
      value += c;
      i++;
    }
    i++; // closing quote
    if (Object.prototype.hasOwnProperty.call(labels, name)) fail(`label ${name} given twice`);
    labels[name] = value;
    skipSpaces();
    if (line[i] === ',') {
      i++;
      continue;
    }
    if (line[i] === '}') return { labels, end: i + 1 };
    fail(`expected ',' or '}' after the value of label ${name}`);
  }
}

/** The family a sample belongs to: `foo_bucket`/`foo_sum`/`foo_count` go to histogram or summary `foo`. */
function familyNameOf(sampleName: string, families: Map<string, MetricFamily>): string {
  for (const suffix of ['_bucket', '_sum', '_count'] as const) {
    if (!sampleName.endsWith(suffix)) continue;
    const base = sampleName.slice(0, -suffix.length);
    const f = families.get(base);
    if (!f) continue;
    if (f.type === 'histogram') return base;
    if (f.type === 'summary' && suffix !== '_bucket') return base;
  }
  return sampleName;
}

/** Parses a whole exposition; families keyed by name, in the order they first appear. */
export function parseExposition(text: string): Map<string, MetricFamily> {
  const families = new Map<string, MetricFamily>();
  const typed = new Set<string>();
  const family = (name: string): MetricFamily => {
    let f = families.get(name);
    if (!f) {
      f = { name, type: 'untyped', samples: [] };
      families.set(name, f);
    }
    return f;
  };
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n].replace(/\r$/, '');
    const fail: (what: string) => never = (what) => {
      throw new ParseError(n + 1, line, what);
    };
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line);
      if (!m) continue; // a plain comment
      const [, kind, name, rest = ''] = m;
      if (!METRIC_NAME.test(name) || METRIC_NAME.exec(name)?.[0] !== name) fail(`bad metric name ${name}`);
      const f = family(name);
      if (kind === 'HELP') {
        if (f.help !== undefined) fail(`second HELP for ${name}`);
        f.help = unescapeHelp(rest);
      } else {
        const type = rest.trim() as FamilyType;
        if (!TYPES.includes(type)) fail(`unknown type ${rest}`);
        if (f.samples.length > 0) fail(`TYPE for ${name} after its samples`);
        if (typed.has(name)) fail(`second TYPE for ${name}`);
        typed.add(name);
        f.type = type;
      }
      continue;
    }
    const name = METRIC_NAME.exec(line)?.[0];
    if (!name) fail('a sample line must start with a metric name');
    let i = name.length;
    let labels: Record<string, string> = {};
    if (line[i] === '{') {
      const parsed = parseLabels(line, i, fail);
      labels = parsed.labels;
      i = parsed.end;
    }
    const rest = line.slice(i);
    if (!/^[ \t]/.test(rest)) fail('expected a space before the value');
    const fields = rest.trim().split(/[ \t]+/);
    if (fields.length < 1 || fields.length > 2) fail('expected a value and an optional timestamp');
    const value = parseValue(fields[0]);
    if (value === undefined) fail(`bad value ${fields[0]}`);
    let timestampMs: number | undefined;
    if (fields.length === 2) {
      if (!/^-?\d+$/.test(fields[1])) fail(`bad timestamp ${fields[1]}`);
      timestampMs = Number(fields[1]);
    }
    const f = family(familyNameOf(name, families));
    f.samples.push({ name, labels, value: value as number, ...(timestampMs !== undefined ? { timestampMs } : {}) });
  }
  return families;
}

/** Label names used by a family's series, sorted; `le` (histogram buckets) and `quantile` (summaries) left out. */
export function labelNames(f: MetricFamily): string[] {
  const names = new Set<string>();
  for (const s of f.samples) {
    for (const k of Object.keys(s.labels)) {
      if ((f.type === 'histogram' && k === 'le') || (f.type === 'summary' && k === 'quantile')) continue;
      names.add(k);
    }
  }
  return [...names].sort();
}

/** The series key of a sample without `le`: `{a="x",b="y"}` with names sorted. */
function seriesKey(labels: Record<string, string>): string {
  return JSON.stringify(
    Object.keys(labels)
      .filter((k) => k !== 'le')
      .sort()
      .map((k) => [k, labels[k]]),
  );
}

export interface HistogramSeries {
  labels: Record<string, string>;
  /** Finite upper bounds, ascending. */
  bounds: number[];
  /** Cumulative counts per finite bound, then +Inf last. */
  cumulative: number[];
  sum: number;
  count: number;
}

/**
 * The histogram's series, one per label set, with buckets in bound order. Throws on an inconsistent histogram:
 * missing +Inf bucket, missing _sum/_count, decreasing cumulative counts, or a +Inf count different from _count.
 */
export function histogramSeries(f: MetricFamily): HistogramSeries[] {
  if (f.type !== 'histogram') throw new Error(`${f.name} is a ${f.type}, not a histogram`);
  const bySeries = new Map<string, { labels: Record<string, string>; buckets: [number, number][]; sum?: number; count?: number }>();
  const entry = (labels: Record<string, string>) => {
    const key = seriesKey(labels);
    let e = bySeries.get(key);
    if (!e) {
      const own = { ...labels };
      delete own.le;
      e = { labels: own, buckets: [] };
      bySeries.set(key, e);
    }
    return e;
  };
  for (const s of f.samples) {
    if (s.name === `${f.name}_bucket`) {
      const le = s.labels.le;
      if (le === undefined) throw new Error(`${f.name}: a _bucket sample without le`);
      const bound = parseValue(le);
      if (bound === undefined || Number.isNaN(bound)) throw new Error(`${f.name}: bad le ${JSON.stringify(le)}`);
      entry(s.labels).buckets.push([bound, s.value]);
    } else if (s.name === `${f.name}_sum`) entry(s.labels).sum = s.value;
    else if (s.name === `${f.name}_count`) entry(s.labels).count = s.value;
    else throw new Error(`${f.name}: unexpected sample ${s.name} in a histogram`);
  }
  const out: HistogramSeries[] = [];
  for (const e of bySeries.values()) {
    const where = `${f.name}${seriesKey(e.labels)}`;
    const sorted = [...e.buckets].sort((a, b) => a[0] - b[0]);
    const last = sorted[sorted.length - 1];
    if (!last || last[0] !== Infinity) throw new Error(`${where}: no +Inf bucket`);
    if (e.sum === undefined || e.count === undefined) throw new Error(`${where}: _sum or _count missing`);
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i][0] === sorted[i - 1][0]) throw new Error(`${where}: bucket le=${sorted[i][0]} given twice`);
      if (sorted[i][1] < sorted[i - 1][1]) throw new Error(`${where}: cumulative counts decrease at le=${sorted[i][0]}`);
    }
    if (last[1] !== e.count) throw new Error(`${where}: +Inf bucket ${last[1]} differs from _count ${e.count}`);
    out.push({
      labels: e.labels,
      bounds: sorted.slice(0, -1).map(([b]) => b),
      cumulative: sorted.map(([, c]) => c),
      sum: e.sum,
      count: e.count,
    });
  }
  return out;
}

/**
 * The finite bucket bounds of a histogram family; throws when its series disagree (a family has one layout).
 * Undefined when the family has no series.
 */
export function bucketBounds(f: MetricFamily): number[] | undefined {
  const series = histogramSeries(f);
  if (series.length === 0) return undefined;
  const first = series[0].bounds;
  for (const s of series) {
    if (JSON.stringify(s.bounds) !== JSON.stringify(first)) {
      throw new Error(`${f.name}: series ${seriesKey(s.labels)} has buckets ${s.bounds.join(',')}, another has ${first.join(',')}`);
    }
  }
  return first;
}

/** True when every label in `match` equals the sample's. */
function matches(labels: Record<string, string>, match: Record<string, string>): boolean {
  return Object.entries(match).every(([k, v]) => labels[k] === v);
}

/**
 * Sum of the values of samples named `sampleName` (default: the family name) whose labels include `match`;
 * undefined when no sample matches (so "absent" and "zero" stay distinguishable).
 */
export function sumSamples(
  families: Map<string, MetricFamily>,
  familyName: string,
  match: Record<string, string> = {},
  sampleName = familyName,
): number | undefined {
  const f = families.get(familyName);
  if (!f) return undefined;
  let total: number | undefined;
  for (const s of f.samples) {
    if (s.name !== sampleName || !matches(s.labels, match)) continue;
    total = (total ?? 0) + s.value;
  }
  return total;
}
