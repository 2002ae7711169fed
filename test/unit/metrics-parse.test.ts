// The exposition-format parser the metrics comparison relies on: escapes, families of histograms and
// summaries, special values, and refusal of malformed input (so a broken /metrics cannot pass by accident).
import { bucketBounds, histogramSeries, labelNames, parseExposition, sumSamples } from '../helpers/exposition';
import { ETCD_DASHBOARD_METRICS, exponentialBuckets } from '../helpers/etcd-metrics';

const TRICKY = [
  '# HELP weird_total A help with a backslash \\\\ and a newline \\n in it.',
  '# TYPE weird_total counter',
  'weird_total{path="C:\\\\dir",quote="say \\"hi\\"",nl="a\\nb",brace="}{,="} 3',
  'weird_total{path="x",quote="",nl="",brace="",} 4.5e+00 1700000000000',
  '# a plain comment, not HELP or TYPE',
  '',
  '# TYPE lat_seconds histogram',
  'lat_seconds_bucket{To="a",le="0.0001"} 1',
  'lat_seconds_bucket{To="a",le="0.0002"} 1',
  'lat_seconds_bucket{To="a",le="+Inf"} 2',
  'lat_seconds_sum{To="a"} 0.25',
  'lat_seconds_count{To="a"} 2',
  'lat_seconds_bucket{le="0.0002",To="b"} 0',
  'lat_seconds_bucket{To="b",le="1e-04"} 0',
  'lat_seconds_bucket{To="b",le="+Inf"} 0',
  'lat_seconds_sum{To="b"} 0',
  'lat_seconds_count{To="b"} 0',
  '# TYPE rpc summary',
  'rpc{quantile="0.5"} NaN',
  'rpc_sum 1',
  'rpc_count 2',
  '# TYPE lonely_count gauge',
  'lonely_count -Inf',
  'untyped_thing  +Inf',
  'g{a="1"} 1.5',
  'g{a="2"} -2',
  'odd_spellings{v="a"} Nan',
  'odd_spellings{v="b"} -inf',
  'odd_spellings{v="c"} +Infinity',
].join('\n');

describe('parseExposition', () => {
  const fams = parseExposition(TRICKY);

  test('unescapes HELP text and label values, accepts a trailing comma and a timestamp', () => {
    const w = fams.get('weird_total');
    expect(w?.type).toBe('counter');
    expect(w?.help).toBe('A help with a backslash \\ and a newline \n in it.');
    expect(w?.samples[0].labels).toEqual({ path: 'C:\\dir', quote: 'say "hi"', nl: 'a\nb', brace: '}{,=' });
    expect(w?.samples[0].value).toBe(3);
    expect(w?.samples[1]).toEqual({ name: 'weird_total', labels: { path: 'x', quote: '', nl: '', brace: '' }, value: 4.5, timestampMs: 1700000000000 });
    expect(labelNames(w!)).toEqual(['brace', 'nl', 'path', 'quote']);
  });

  test('groups _bucket/_sum/_count under their histogram, whatever the label order and number spelling', () => {
    const h = fams.get('lat_seconds');
    expect(h?.type).toBe('histogram');
    expect(fams.has('lat_seconds_bucket')).toBe(false);
    expect(labelNames(h!)).toEqual(['To']);
    expect(bucketBounds(h!)).toEqual([0.0001, 0.0002]);
    const series = histogramSeries(h!);
    expect(series.map((s) => [s.labels, s.count, s.sum, s.cumulative])).toEqual([
      [{ To: 'a' }, 2, 0.25, [1, 1, 2]],
      [{ To: 'b' }, 0, 0, [0, 0, 0]],
    ]);
    expect(sumSamples(fams, 'lat_seconds', {}, 'lat_seconds_count')).toBe(2);
    expect(sumSamples(fams, 'lat_seconds', { To: 'a' }, 'lat_seconds_bucket')).toBe(4);
  });

  test('summaries keep quantile out of their label names; _count of a non-histogram is its own family', () => {
    const r = fams.get('rpc');
    expect(r?.type).toBe('summary');
    expect(labelNames(r!)).toEqual([]);
    expect(Number.isNaN(r!.samples[0].value)).toBe(true);
    expect(r!.samples.map((s) => s.name)).toEqual(['rpc', 'rpc_sum', 'rpc_count']);
    expect(fams.get('lonely_count')).toMatchObject({ type: 'gauge', samples: [{ value: -Infinity }] });
  });

  test('NaN and infinities in any letter case, as Go parses them (prom-client prints "Nan")', () => {
    const v = fams.get('odd_spellings')!.samples.map((x) => x.value);
    expect(Number.isNaN(v[0])).toBe(true);
    expect(v.slice(1)).toEqual([-Infinity, Infinity]);
  });

  test('samples without TYPE are untyped; sums tell absent from zero', () => {
    expect(fams.get('untyped_thing')).toMatchObject({ type: 'untyped', samples: [{ value: Infinity }] });
    expect(sumSamples(fams, 'g')).toBe(-0.5);
    expect(sumSamples(fams, 'g', { a: '1' })).toBe(1.5);
    expect(sumSamples(fams, 'g', { a: '3' })).toBeUndefined();
    expect(sumSamples(fams, 'nope')).toBeUndefined();
  });

  test.each([
    ['an unterminated label value', 'm{a="x} 1'],
    ['an unknown escape', 'm{a="\\t"} 1'],
    ['a duplicated label', 'm{a="1",a="2"} 1'],
    ['a missing value', 'm{a="1"}'],
    ['a value that is not a number', 'm 1O'],
    ['a misspelt special value', 'm nann'],
    ['a bad timestamp', 'm 1 12.5'],
    ['an unknown type', '# TYPE m countr'],
    ['a second TYPE', '# TYPE m gauge\n# TYPE m gauge'],
    ['a TYPE after samples', 'm 1\n# TYPE m gauge'],
    ['a second HELP', '# HELP m a\n# HELP m b'],
    ['a label name starting with a digit', 'm{1a="x"} 1'],
    ['no space before the value', 'm{a="x"}1'],
    ['three fields', 'm 1 2 3'],
  ])('refuses %s', (_what, text) => {
    expect(() => parseExposition(text)).toThrow(/exposition line \d+/);
  });

  test('the error names the line', () => {
    expect(() => parseExposition('ok 1\nok2 2\nbad{ 3')).toThrow(/^exposition line 3: /);
  });

  test.each([
    ['no +Inf bucket', '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1', /no \+Inf bucket/],
    ['decreasing counts', '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="2"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 2', /decrease/],
    ['+Inf differing from _count', '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3', /differs from _count/],
    ['a missing _sum', '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_count 2', /_sum or _count missing/],
  ])('histogramSeries refuses an inconsistent histogram: %s', (_what, text, err) => {
    const f = parseExposition(text).get('h')!;
    expect(() => histogramSeries(f)).toThrow(err);
  });

  test('bucketBounds refuses series with different layouts', () => {
    const text = [
      '# TYPE h histogram',
      'h_bucket{x="a",le="1"} 0', 'h_bucket{x="a",le="+Inf"} 0', 'h_sum{x="a"} 0', 'h_count{x="a"} 0',
      'h_bucket{x="b",le="2"} 0', 'h_bucket{x="b",le="+Inf"} 0', 'h_sum{x="b"} 0', 'h_count{x="b"} 0',
    ].join('\n');
    expect(() => bucketBounds(parseExposition(text).get('h')!)).toThrow(/has buckets/);
  });
});

describe('the dashboard/alert metric list', () => {
  test('is well formed: unique names, buckets exactly for histograms, ascending, label names sorted', () => {
    const names = ETCD_DASHBOARD_METRICS.map((m) => m.name);
    expect(new Set(names).size).toBe(names.length);
    for (const m of ETCD_DASHBOARD_METRICS) {
      expect([m.name, m.buckets !== undefined]).toEqual([m.name, m.type === 'histogram']);
      if (m.buckets) expect([...m.buckets].sort((a, b) => a - b)).toEqual(m.buckets);
      expect([...m.labels].sort()).toEqual(m.labels);
      expect(m.labels).not.toContain('le');
      expect(m.users.length).toBeGreaterThan(0);
      if (m.type === 'counter') expect(m.name).toMatch(/_total$/);
    }
  });

  test('exponentialBuckets gives the 0.001 × 2^n disk layout etcd prints (0.001 … 8.192)', () => {
    const b = exponentialBuckets(0.001, 14);
    expect(b[0]).toBe(0.001);
    expect(b[13]).toBe(8.192);
    expect(b.map(String)).toEqual(['0.001', '0.002', '0.004', '0.008', '0.016', '0.032', '0.064', '0.128', '0.256', '0.512', '1.024', '2.048', '4.096', '8.192']);
  });
});
