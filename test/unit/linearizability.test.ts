// The linearizability checker (test/helpers/linearizability.ts): hand-written histories it must
// accept or reject, a cross-check against a brute-force search on small random histories, and
// randomized histories generated from a real sequential execution (accepted) with one read
// mutated to an impossible value (rejected), including the size of the integration workload.
import { checkHistory, describeOperation, Operation } from '../helpers/linearizability';

const INF = Infinity;

// Builders: [call, ret] intervals; ret = INF means the outcome is unknown.
const get = (key: string, result: string | null, call: number, ret: number, client?: number): Operation => ({ kind: 'get', key, result, call, ret, client });
const put = (key: string, value: string, call: number, ret: number, client?: number): Operation => ({ kind: 'put', key, value, call, ret, client });
const cas = (key: string, expected: string | null, value: string, ok: boolean | undefined, call: number, ret: number, client?: number): Operation => ({
  kind: 'cas',
  key,
  expected,
  value,
  ok,
  call,
  ret,
  client,
});

function expectOk(h: Operation[]): void {
  const r = checkHistory(h);
  if (!r.ok) throw new Error(`expected linearizable, got:\n${r.reason}`);
  expect(r.timedOut).toBeUndefined();
}

function expectRejected(h: Operation[], key = 'k'): string {
  const r = checkHistory(h);
  expect(r.ok).toBe(false);
  expect(r.timedOut).toBeUndefined();
  expect(r.key).toBe(key);
  expect(r.reason).toContain(JSON.stringify(key));
  return r.reason as string;
}

describe('accepts linearizable histories', () => {
  test('empty history, and a key never written reads as absent', () => {
    expectOk([]);
    expectOk([get('k', null, 0, 1)]);
  });

  test('sequential put / get / cas', () => {
    expectOk([
      put('k', 'a', 0, 1),
      get('k', 'a', 2, 3),
      cas('k', 'a', 'b', true, 4, 5),
      get('k', 'b', 6, 7),
      cas('k', 'a', 'c', false, 8, 9),
      cas('k', null, 'd', false, 10, 11),
      get('k', 'b', 12, 13),
    ]);
  });

  test('a read concurrent with a write may see the old or the new value', () => {
    expectOk([put('k', 'a', 0, 1), put('k', 'b', 2, 10), get('k', 'a', 3, 4), get('k', 'b', 5, 6), get('k', 'b', 11, 12)]);
    // Two readers overlapping the write: one sees it, the other (returning later) may not,
    // as long as their own intervals overlap.
    expectOk([put('k', 'a', 0, 1), put('k', 'b', 2, 10), get('k', 'b', 3, 8), get('k', 'a', 4, 9)]);
  });

  test('concurrent writes observed in one consistent order', () => {
    expectOk([
      put('k', 'a', 0, 10, 1),
      put('k', 'b', 0, 10, 2),
      get('k', 'b', 1, 2, 3),
      get('k', 'a', 3, 4, 3),
      get('k', 'a', 5, 6, 4),
      get('k', 'a', 11, 12, 4),
    ]);
  });

  test('touching intervals count as concurrent', () => {
    expectOk([put('k', 'a', 0, 5), get('k', null, 5, 6)]);
  });

  test('keys are independent', () => {
    expectOk([put('x', 'a', 0, 1), put('y', 'b', 0, 1), get('x', 'a', 2, 3), get('y', 'b', 2, 3), cas('x', 'a', 'c', true, 4, 5), get('y', 'b', 6, 7)]);
  });

  test('an unknown-outcome put that took effect (seen by a later read)', () => {
    expectOk([put('k', 'a', 0, 1), put('k', 'x', 2, INF), get('k', 'a', 3, 4), get('k', 'x', 50, 51), get('k', 'x', 52, 53)]);
  });

  test('an unknown-outcome put that never took effect', () => {
    expectOk([put('k', 'a', 0, 1), put('k', 'x', 2, INF), get('k', 'a', 3, 4), get('k', 'a', 50, 51)]);
  });

  test('an unknown-outcome write can take effect long after its client gave up', () => {
    expectOk([put('k', 'x', 0, INF), put('k', 'a', 100, 101), get('k', 'a', 102, 103), get('k', 'x', 200, 201)]);
  });

  test('an unknown-outcome get is ignored whatever it carries', () => {
    expectOk([put('k', 'a', 0, 1), get('k', 'nonsense', 2, INF), get('k', 'a', 3, 4)]);
  });

  test('an unknown-outcome put explains a failed cas', () => {
    // Without x taking effect, cas(a -> b) would have had to succeed.
    expectOk([put('k', 'a', 0, 1), put('k', 'x', 2, INF), cas('k', 'a', 'b', false, 3, 4)]);
  });

  test('CAS chains, including a concurrent loser and unknown outcomes', () => {
    expectOk([
      cas('k', null, 'a', true, 0, 1, 1),
      cas('k', 'a', 'b', true, 2, 6, 1),
      cas('k', 'a', 'c', false, 3, 7, 2), // lost the race to a -> b
      cas('k', 'b', 'd', undefined, 8, INF, 1), // unknown, and it did happen
      get('k', 'd', 20, 21, 2),
      cas('k', 'd', 'e', true, 22, 23, 2),
      cas('k', 'e', 'f', undefined, 24, INF, 1), // unknown, and it did not happen
      get('k', 'e', 30, 31, 2),
    ]);
  });

  test('two clients racing cas from the same value: exactly one wins', () => {
    expectOk([put('k', 'a', 0, 1), cas('k', 'a', 'b', true, 2, 5), cas('k', 'a', 'c', false, 2, 5), get('k', 'b', 6, 7)]);
  });
});

describe('rejects non-linearizable histories', () => {
  test('a stale read after a completed write', () => {
    const reason = expectRejected([put('k', 'a', 0, 1), put('k', 'b', 2, 3), get('k', 'a', 4, 5)]);
    expect(reason).toContain('get(k) -> "a"');
    expect(reason).toMatch(/At most 2 of its 3 completed operations could be linearized/);
  });

  test('a read of a value never written', () => {
    const reason = expectRejected([put('k', 'a', 0, 1), get('k', 'zzz', 2, 3)]);
    expect(reason).toContain('it read "zzz" but the value is "a"');
  });

  test('a read of an absent key after a completed write', () => {
    expectRejected([put('k', 'a', 0, 1), get('k', null, 2, 3)]);
  });

  test('two readers observing concurrent writes in contradictory orders', () => {
    expectRejected([
      put('k', 'a', 0, 100, 1),
      put('k', 'b', 0, 100, 2),
      get('k', 'a', 10, 11, 3),
      get('k', 'b', 20, 21, 3),
      get('k', 'b', 12, 13, 4),
      get('k', 'a', 22, 23, 4),
    ]);
  });

  test('a lost update: two cas succeed from the same expected value', () => {
    expectRejected([put('k', 'x', 0, 1), cas('k', 'x', 'a', true, 2, 5, 1), cas('k', 'x', 'b', true, 2, 5, 2)]);
  });

  test('a cas that failed although the value was the expected one', () => {
    const reason = expectRejected([put('k', 'a', 0, 1), cas('k', 'a', 'b', false, 2, 3)]);
    expect(reason).toContain('it failed although the value is the expected "a"');
  });

  test('a cas that succeeded from an absent key that existed', () => {
    expectRejected([put('k', 'a', 0, 1), cas('k', null, 'b', true, 2, 3)]);
  });

  test('a read that sees a write started after the read returned', () => {
    expectRejected([get('k', 'a', 0, 1), put('k', 'a', 2, 3)]);
  });

  test('an unknown-outcome write that took effect cannot be undone', () => {
    expectRejected([put('k', 'a', 0, 1), put('k', 'x', 2, INF), get('k', 'x', 5, 6), get('k', 'a', 7, 8)]);
  });

  test('a read after an unknown-outcome read is still checked', () => {
    expectRejected([put('k', 'a', 0, 1), get('k', 'a', 2, INF), get('k', 'b', 3, 4)]);
  });

  test('the failing key is reported, others pass', () => {
    const r = checkHistory([put('a', '1', 0, 1), get('a', '1', 2, 3), put('b', '1', 0, 1), get('b', null, 2, 3)]);
    expect(r).toMatchObject({ ok: false, key: 'b' });
  });
});

describe('API details', () => {
  test('malformed operations throw', () => {
    expect(() => checkHistory([put('k', 'a', 5, 1)])).toThrow(/malformed/);
    expect(() => checkHistory([cas('k', 'a', 'b', undefined, 0, 1)])).toThrow(/ok: boolean/);
    expect(() => checkHistory([{ kind: 'get', key: 'k', call: 0, ret: 1 } as Operation])).toThrow(/result/);
  });

  test('describeOperation formats each kind', () => {
    expect(describeOperation(put('k', 'a', 1, 2, 3), 7)).toBe('#7 client 3 put(k, "a") [1.000, 2.000]');
    expect(describeOperation(get('k', null, 1, 2))).toBe('get(k) -> <absent> [1.000, 2.000]');
    expect(describeOperation(cas('k', null, 'b', undefined, 1, INF))).toBe('cas(k, <absent> -> "b") = ? (outcome unknown) [1.000, ∞]');
  });

  test('stats are reported per key', () => {
    const r = checkHistory([put('k', 'a', 0, 1), put('k', 'b', 0, INF), get('j', null, 0, 1), get('j', null, 0, INF)]);
    expect(r.ok).toBe(true);
    expect(r.stats.map((s) => [s.key, s.ops, s.unknown])).toEqual([
      ['j', 1, 0],
      ['k', 2, 1],
    ]);
  });

  test('a search that cannot finish in time reports timedOut (and not ok)', () => {
    // Many mutually concurrent writes and an impossible final read: the search has to try
    // exponentially many subsets before it can reject.
    const h: Operation[] = [];
    for (let i = 0; i < 40; i++) h.push(put('k', `v${i}`, 0, 100), get('k', `v${i}`, 0, 100));
    h.push(get('k', 'never', 101, 102));
    const t0 = performance.now();
    const r = checkHistory(h, { timeoutMs: 300 });
    expect(performance.now() - t0).toBeLessThan(3_000);
    expect(r.ok).toBe(false);
    expect(r.timedOut).toBe(true);
    expect(r.reason).toMatch(/timed out/);
  });
});

// ---------------------------------------------------------------------------
// Randomized

/** Small seeded PRNG (mulberry32) so failures are reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Brute force: is there an order of the operations (unknown ones optional, unknown gets
 * dropped) respecting real time, in which every operation is legal?
 */
function bruteForce(h: Operation[]): boolean {
  const ops = h.filter((o) => !(o.kind === 'get' && o.ret === INF));
  const byKey = new Map<string, Operation[]>();
  for (const o of ops) byKey.set(o.key, [...(byKey.get(o.key) ?? []), o]);
  for (const kops of byKey.values()) {
    const used = new Array<boolean>(kops.length).fill(false);
    const search = (state: string | null, left: number): boolean => {
      if (kops.every((o, i) => used[i] || o.ret === INF)) return true;
      if (left === 0) return false;
      for (let i = 0; i < kops.length; i++) {
        if (used[i]) continue;
        const o = kops[i];
        // o can go next only if no remaining operation returned before o was called.
        if (kops.some((p, j) => !used[j] && j !== i && p.ret < o.call)) continue;
        let ns: string | null;
        if (o.kind === 'get') {
          if (o.result !== state) continue;
          ns = state;
        } else if (o.kind === 'put') {
          ns = o.value;
        } else if (o.ret === INF) {
          ns = state === o.expected ? o.value : state;
        } else if (o.ok) {
          if (state !== o.expected) continue;
          ns = o.value;
        } else {
          if (state === o.expected) continue;
          ns = state;
        }
        used[i] = true;
        const found = search(ns, left - 1);
        used[i] = false;
        if (found) return true;
      }
      return false;
    };
    if (!search(null, kops.length)) return false;
  }
  return true;
}

/** Arbitrary (mostly non-linearizable) small histories over a tiny value domain. */
function randomSmallHistory(rnd: () => number, maxOps: number, unknownRate: number): Operation[] {
  const n = 1 + Math.floor(rnd() * maxOps);
  const values = ['a', 'b', 'c'];
  const pick = () => values[Math.floor(rnd() * values.length)];
  const pickOrNull = () => (rnd() < 0.25 ? null : pick());
  const h: Operation[] = [];
  for (let i = 0; i < n; i++) {
    const call = Math.floor(rnd() * 10);
    const ret = rnd() < unknownRate ? INF : call + Math.floor(rnd() * 5);
    const key = rnd() < 0.8 ? 'k' : 'j';
    const r = rnd();
    if (r < 0.4) h.push(get(key, pickOrNull(), call, ret));
    else if (r < 0.7) h.push(put(key, pick(), call, ret));
    else h.push(cas(key, pickOrNull(), pick(), ret === INF ? undefined : rnd() < 0.5, call, ret));
  }
  return h;
}

interface GenOptions {
  clients: number;
  keys: number;
  ops: number;
  /** Probability that a write's outcome is unknown to its client. */
  unknownRate: number;
}

/**
 * A linearizable history: each client issues operations one after another with random
 * durations; every operation takes effect at a random instant inside its interval, and the
 * results come from applying them in that order to a real map. Unknown-outcome writes take
 * effect or not at random. Values are unique.
 */
function generateHistory(rnd: () => number, g: GenOptions): Operation[] {
  interface Draft {
    kind: 'get' | 'put' | 'cas';
    key: string;
    call: number;
    ret: number;
    at: number;
    client: number;
    unknown: boolean;
    applies: boolean;
  }
  const drafts: Draft[] = [];
  const perClient = Math.ceil(g.ops / g.clients);
  for (let c = 0; c < g.clients; c++) {
    let t = rnd() * 5;
    for (let k = 0; k < perClient && drafts.length < g.ops; k++) {
      const call = t + rnd() * 2;
      const ret = call + 0.5 + rnd() * 10;
      const r = rnd();
      const kind = r < 0.45 ? 'get' : r < 0.7 ? 'put' : 'cas';
      const unknown = rnd() < g.unknownRate;
      drafts.push({ kind, key: `key${Math.floor(rnd() * g.keys)}`, call, ret, at: call + rnd() * (ret - call), client: c, unknown, applies: !unknown || rnd() < 0.5 });
      t = ret;
    }
  }
  drafts.sort((x, y) => x.at - y.at);
  const store = new Map<string, string>();
  const written = new Map<string, string[]>();
  let seq = 0;
  const out: Operation[] = [];
  for (const d of drafts) {
    const current = store.get(d.key) ?? null;
    const ret = d.unknown ? INF : d.ret;
    if (d.kind === 'get') {
      out.push(get(d.key, d.applies ? current : 'garbage', d.call, ret, d.client));
      continue;
    }
    const value = `v${seq++}`;
    const write = () => {
      store.set(d.key, value);
      written.set(d.key, [...(written.get(d.key) ?? []), value]);
    };
    if (d.kind === 'put') {
      if (d.applies) write();
      out.push(put(d.key, value, d.call, ret, d.client));
    } else {
      // Mostly the current value (so chains of successful CAS form), sometimes an old one or absent.
      const old = written.get(d.key) ?? [];
      const r = rnd();
      const expected = r < 0.65 ? current : r < 0.85 && old.length > 0 ? old[Math.floor(rnd() * old.length)] : null;
      const ok = expected === current;
      if (d.applies && ok) write();
      out.push(cas(d.key, expected, value, d.unknown ? undefined : ok, d.call, ret, d.client));
    }
  }
  // Return in call order, as a recorder would.
  return out.sort((x, y) => x.call - y.call);
}

/** The history with one known read changed to a value nobody wrote. */
function mutateToUnwritten(rnd: () => number, h: Operation[]): Operation[] | undefined {
  const reads = h.map((o, i) => [o, i] as const).filter(([o]) => o.kind === 'get' && o.ret !== INF);
  if (reads.length === 0) return undefined;
  const [o, i] = reads[Math.floor(rnd() * reads.length)];
  const copy = [...h];
  copy[i] = { ...(o as Operation & { kind: 'get' }), result: 'never-written' };
  return copy;
}

/**
 * The history with one known read changed to a provably stale value: one written by a
 * completed write W1 that was overwritten by a completed put W2 called after W1 returned and
 * returning before the read was called.
 */
function mutateToStale(rnd: () => number, h: Operation[]): Operation[] | undefined {
  const idx = h.map((_, i) => i);
  for (let attempt = 0; attempt < 200; attempt++) {
    const ri = idx[Math.floor(rnd() * idx.length)];
    const r = h[ri];
    if (r.kind !== 'get' || r.ret === INF) continue;
    const w2s = h.filter((o) => o.key === r.key && o.kind === 'put' && o.ret < r.call);
    if (w2s.length === 0) continue;
    const w2 = w2s[Math.floor(rnd() * w2s.length)];
    const w1s = h.filter(
      (o): o is Operation & { value: string } => o.key === r.key && o !== w2 && o.ret < w2.call && (o.kind === 'put' || (o.kind === 'cas' && o.ok === true)),
    );
    if (w1s.length === 0) continue;
    const w1 = w1s[Math.floor(rnd() * w1s.length)];
    if (r.result === w1.value) continue;
    const copy = [...h];
    copy[ri] = { ...r, result: w1.value };
    return copy;
  }
  return undefined;
}

describe('randomized', () => {
  test.each([
    [7, 0.15],
    [9, 0.35],
  ])('agrees with a brute-force search on 3000 small random histories (up to %i ops, unknown rate %d)', (maxOps, unknownRate) => {
    const rnd = prng(maxOps);
    let accepted = 0;
    let rejected = 0;
    for (let t = 0; t < 3000; t++) {
      const h = randomSmallHistory(rnd, maxOps, unknownRate);
      const expected = bruteForce(h);
      const r = checkHistory(h);
      if (r.ok !== expected) {
        throw new Error(`case ${t}: checker says ${r.ok}, brute force ${expected}:\n${h.map((o) => describeOperation(o)).join('\n')}\n${r.reason ?? ''}`);
      }
      if (expected) accepted++;
      else rejected++;
    }
    // Both verdicts are well represented.
    expect(accepted).toBeGreaterThan(500);
    expect(rejected).toBeGreaterThan(500);
  });

  test.each([1, 2, 3, 4, 5, 6, 7, 8])('generated history (seed %i) is accepted; with one impossible read it is rejected', (seed) => {
    const rnd = prng(seed * 7919);
    const h = generateHistory(rnd, { clients: 3 + (seed % 6), keys: 1 + (seed % 3), ops: 150, unknownRate: seed % 2 === 0 ? 0.05 : 0 });
    expectOk(h);
    const bad = mutateToUnwritten(rnd, h);
    expect(bad).toBeDefined();
    const r = checkHistory(bad as Operation[]);
    expect(r.ok).toBe(false);
    expect(r.timedOut).toBeUndefined();
    expect(r.reason).toContain('never-written');
  });

  test('generated histories with one stale read are rejected', () => {
    let tried = 0;
    for (let seed = 100; seed < 140; seed++) {
      const rnd = prng(seed);
      const h = generateHistory(rnd, { clients: 4, keys: 2, ops: 120, unknownRate: 0.03 });
      expectOk(h);
      const bad = mutateToStale(rnd, h);
      if (!bad) continue;
      tried++;
      const r = checkHistory(bad);
      if (r.ok || r.timedOut) throw new Error(`seed ${seed}: stale read not rejected: ${JSON.stringify(r)}`);
    }
    expect(tried).toBeGreaterThan(20);
  });

  test('integration-sized history (4000 ops, 5 keys, 10 clients, unknown writes) is checked quickly both ways', () => {
    for (const seed of [11, 12, 13]) {
      const rnd = prng(seed);
      const h = generateHistory(rnd, { clients: 10, keys: 5, ops: 4000, unknownRate: 0.02 });
      let t0 = performance.now();
      const r = checkHistory(h, { timeoutMs: 10_000 });
      const acceptMs = performance.now() - t0;
      if (!r.ok) throw new Error(r.reason);
      expect(acceptMs).toBeLessThan(2_000);

      const bad = mutateToUnwritten(rnd, h) as Operation[];
      t0 = performance.now();
      const rb = checkHistory(bad, { timeoutMs: 10_000 });
      const rejectMs = performance.now() - t0;
      expect(rb.ok).toBe(false);
      expect(rb.timedOut).toBeUndefined();
      expect(rejectMs).toBeLessThan(2_000);

      const stale = mutateToStale(rnd, h) as Operation[];
      t0 = performance.now();
      const rs = checkHistory(stale, { timeoutMs: 10_000 });
      const staleMs = performance.now() - t0;
      expect(rs.ok).toBe(false);
      expect(rs.timedOut).toBeUndefined();
      expect(staleMs).toBeLessThan(2_000);
    }
  });
});
