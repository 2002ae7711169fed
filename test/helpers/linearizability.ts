/**
 * Linearizability checker for a key-value register history: the Wing & Gong
 * algorithm with Lowe's memoization of (set of linearized operations, model
 * state), the algorithm porcupine implements.
 *
 * Model, per key (the value is a string, or null when the key is absent):
 *   get(key) -> value|null      legal iff the current value equals the result
 *   put(key, value)             always legal, sets the value
 *   cas(key, expected, new)     ok=true:  legal iff value === expected, sets new
 *                               ok=false: legal iff value !== expected
 *                               (expected null = "the key is absent")
 *
 * Every operation has a call time and a return time on one monotonic clock
 * (e.g. performance.now()). An operation whose outcome the client does not
 * know (error, timeout) has `ret = Infinity`: it may take effect at any point
 * after its call, or never (taking effect "after everything else" is the same
 * as never, since nothing observes it). A get with an unknown outcome carries
 * no information and is dropped; an unknown cas applies iff the value equals
 * `expected` at its linearization point.
 *
 * Keys are independent registers, so the history is partitioned by key
 * (P-compositionality: a history is linearizable iff each per-key
 * sub-history is) and each key is checked separately.
 *
 * Search: the history becomes a list of call/return events sorted by time
 * (calls before returns at equal times, so touching intervals count as
 * concurrent). Walking the list, the first pending call whose operation is
 * legal in the current state is linearized (its call and return events are
 * unlinked); reaching a return event of an operation not yet linearized means
 * that path is dead, so the last linearization is undone (backtracking). A
 * (linearized set, state) pair already explored is never explored again, which
 * keeps typical histories close to linear time. The set is a bitset; its
 * cache key is an incrementally maintained Zobrist hash (equality is checked
 * on the full bitset).
 *
 * Three sound reductions on top (see checkKey): a legal get / failed cas is a
 * forced move (no alternatives); unknown-outcome operations are tried last
 * and only where the next operation needs them; and a configuration is also
 * pruned when one with a subset of the unknown operations already failed.
 * Together they keep high per-key concurrency (16) and unknown outcomes cheap.
 */

export interface OperationBase {
  key: string;
  /** Invocation time (monotonic clock, e.g. performance.now()). */
  call: number;
  /** Response time on the same clock; Infinity when the outcome is unknown (error, timeout). */
  ret: number;
  /** Optional client id, only used in failure explanations. */
  client?: number;
  /** Optional server endpoint that served it, only used in failure explanations. */
  endpoint?: string;
}

export interface GetOperation extends OperationBase {
  kind: 'get';
  /** The value read; null when the key was absent. Ignored (the op is dropped) when ret is Infinity. */
  result?: string | null;
}

export interface PutOperation extends OperationBase {
  kind: 'put';
  value: string;
}

export interface CasOperation extends OperationBase {
  kind: 'cas';
  /** The value the key must have for the swap; null = the key must be absent. */
  expected: string | null;
  /** The value written when the compare holds. */
  value: string;
  /** Whether the swap happened. Required unless ret is Infinity (then it is ignored). */
  ok?: boolean;
}

export type Operation = GetOperation | PutOperation | CasOperation;

export interface CheckOptions {
  /** Give up after this long (default 30 s, whole history); the result then has timedOut: true and ok: false. */
  timeoutMs?: number;
}

export interface CheckResult {
  /** True iff the history is linearizable (false also when the check timed out). */
  ok: boolean;
  /** The key whose sub-history failed (or was being checked when the time ran out). */
  key?: string;
  /** Human-readable explanation of the failure. */
  reason?: string;
  /** True when the search was cut off by timeoutMs; the history is then neither proven nor refuted. */
  timedOut?: boolean;
  /** Per-key search statistics (keys checked so far, in sorted order). */
  stats: KeyCheckStats[];
}

/** Per-key statistics, exposed for tests and reports. */
export interface KeyCheckStats {
  key: string;
  /** Operations in the key's sub-history (after dropping unknown gets). */
  ops: number;
  /** Of which with unknown outcome. */
  unknown: number;
  /** Search steps (linearization attempts + backtracks). */
  steps: number;
  /** Distinct (linearized set, state) pairs memoized. */
  cacheEntries: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;

// Operation codes of the compiled per-key history.
const OP_GET = 0;
const OP_PUT = 1;
const OP_CAS_OK = 2;
const OP_CAS_FAIL = 3;
const OP_CAS_UNKNOWN = 4;

const NULL_VALUE = 0; // interned id of "key absent"
const NO_CONSTRAINT = -1;

/** Formats a value for messages. */
function showValue(v: string | null | undefined): string {
  return v === null || v === undefined ? '<absent>' : JSON.stringify(v);
}

function showTime(t: number): string {
  return Number.isFinite(t) ? t.toFixed(3) : '∞';
}

/** One line describing an operation: `#12 client 3 cas(k, "a" -> "b") = ok [10.000, 12.500]`. */
export function describeOperation(op: Operation, index?: number): string {
  const who =
    (index !== undefined ? `#${index} ` : '') +
    (op.client !== undefined ? `client ${op.client} ` : '') +
    (op.endpoint !== undefined ? `via ${op.endpoint} ` : '');
  const unknown = !Number.isFinite(op.ret);
  let what: string;
  switch (op.kind) {
    case 'get':
      what = `get(${op.key}) -> ${unknown ? '?' : showValue(op.result)}`;
      break;
    case 'put':
      what = `put(${op.key}, ${showValue(op.value)})${unknown ? ' (outcome unknown)' : ''}`;
      break;
    case 'cas':
      what = `cas(${op.key}, ${showValue(op.expected)} -> ${showValue(op.value)}) = ${unknown ? '? (outcome unknown)' : op.ok ? 'ok' : 'failed'}`;
      break;
  }
  return `${who}${what} [${showTime(op.call)}, ${showTime(op.ret)}]`;
}

function validate(op: Operation, i: number): void {
  const bad = (why: string) => new Error(`checkHistory: operation ${i} is malformed (${why}): ${JSON.stringify(op)}`);
  if (typeof op.key !== 'string') throw bad('key must be a string');
  if (typeof op.call !== 'number' || !Number.isFinite(op.call)) throw bad('call must be a finite number');
  if (typeof op.ret !== 'number' || Number.isNaN(op.ret) || op.ret < op.call) throw bad('ret must be >= call (Infinity = unknown)');
  const known = Number.isFinite(op.ret);
  switch (op.kind) {
    case 'get':
      if (known && op.result !== null && typeof op.result !== 'string') throw bad('a completed get needs result: string | null');
      break;
    case 'put':
      if (typeof op.value !== 'string') throw bad('put needs value: string');
      break;
    case 'cas':
      if (typeof op.value !== 'string') throw bad('cas needs value: string');
      if (op.expected !== null && typeof op.expected !== 'string') throw bad('cas needs expected: string | null');
      if (known && typeof op.ok !== 'boolean') throw bad('a completed cas needs ok: boolean');
      break;
    default:
      throw bad(`unknown kind ${(op as { kind: unknown }).kind as string}`);
  }
}

/** xorshift32, seeded: deterministic Zobrist keys (so failures are reproducible). */
function makeRandom(seed: number): () => number {
  let x = seed | 0 || 0x2545f491;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x | 0;
  };
}

interface KeyResult {
  ok: boolean;
  timedOut?: boolean;
  reason?: string;
  stats: KeyCheckStats;
}

/**
 * A memoized search configuration: (linearized known ops, linearized unknown ops, state,
 * constraint). `pre` is NO_CONSTRAINT, or, right after an unknown op was linearized, the state
 * before it: the next op must then be one that op enables (see checkKey).
 */
interface CacheEntry {
  state: number;
  pre: number;
  known: Uint32Array;
  unknown: Uint32Array;
  /** Its whole subtree was explored without success (set when it is popped). */
  finished: boolean;
}

function sameBits(a: Uint32Array, b: Uint32Array): boolean {
  for (let j = 0; j < a.length; j++) if (a[j] !== b[j]) return false;
  return true;
}

function subsetBits(a: Uint32Array, b: Uint32Array): boolean {
  for (let j = 0; j < a.length; j++) if ((a[j] & ~b[j]) !== 0) return false;
  return true;
}

/**
 * Checks one key's sub-history (operations all on the same key, unknown gets
 * already removed). `indexOf` maps each op to its index in the caller's array
 * (for messages).
 *
 * Operations with a known outcome live in the event list of the WGL search.
 * Operations with an unknown outcome (ret = Infinity) never constrain the
 * order (they have no return), so they are kept apart and tried only after
 * the known candidates at each configuration, and only when they change the
 * value (a no-op can always be moved to the end instead). The search succeeds
 * once every known operation is linearized: the unknown ones left over take
 * effect "after everything" (i.e. never, as far as anyone observed).
 *
 * Reduction: an unknown operation u is only linearized when the operation
 * right after it needs it, i.e. is illegal (known op) or a no-op (unknown op)
 * in the state before u. Every linearization can be brought into that form:
 * if the op o after u does not need u, then either o is a put (u is
 * overwritten unseen: move u to the end), or o is a failed cas legal in both
 * states (swap u and o: same states afterwards), as for gets, successful cas
 * and unknown cas "legal in both" would make u a no-op. Without this, every
 * subset of unobserved unknown writes would be a distinct configuration.
 *
 * Forced moves: a known op that leaves the value unchanged (get, failed cas)
 * and is legal now can be moved to the front of any completion (it changes
 * no state, and nothing has to precede it), so it is the only child tried.
 *
 * Memoization: a configuration is (known set K, unknown set U, value s,
 * constraint). Since an unknown operation can always be left out (appended
 * at the end), a configuration (K, U', s) with U' ⊆ U that has been fully
 * explored without success proves (K, U, s) hopeless too, so that one is
 * pruned (dominance), provided its constraint is the same or none; exact
 * repeats are pruned as in porcupine.
 */
function checkKey(key: string, ops: Operation[], indexOf: number[], deadline: number): KeyResult {
  const n = ops.length;
  const isUnknown = (i: number) => !Number.isFinite(ops[i].ret);
  const stats: KeyCheckStats = { key, ops: n, unknown: 0, steps: 0, cacheEntries: 0 };
  if (n === 0) return { ok: true, stats };

  // Intern values: 0 = absent.
  const ids = new Map<string, number>();
  const names: (string | null)[] = [null];
  const intern = (v: string | null): number => {
    if (v === null) return NULL_VALUE;
    let id = ids.get(v);
    if (id === undefined) {
      id = names.length;
      ids.set(v, id);
      names.push(v);
    }
    return id;
  };

  // Compile the operations: code, operand a (read result / cas expected), operand b (written value).
  const code = new Uint8Array(n);
  const opA = new Int32Array(n);
  const opB = new Int32Array(n);
  // Index of each op within its class (known ops / unknown ops).
  const classIdx = new Int32Array(n);
  const unknownOps: number[] = [];
  let nKnown = 0;
  for (let i = 0; i < n; i++) {
    const op = ops[i];
    if (op.kind === 'get') {
      code[i] = OP_GET;
      opA[i] = intern(op.result ?? null);
    } else if (op.kind === 'put') {
      code[i] = OP_PUT;
      opB[i] = intern(op.value);
    } else {
      code[i] = isUnknown(i) ? OP_CAS_UNKNOWN : op.ok ? OP_CAS_OK : OP_CAS_FAIL;
      opA[i] = intern(op.expected);
      opB[i] = intern(op.value);
    }
    if (isUnknown(i)) unknownOps.push(i);
    else classIdx[i] = nKnown++;
  }
  unknownOps.sort((x, y) => ops[x].call - ops[y].call || x - y);
  const nUnknown = unknownOps.length;
  unknownOps.forEach((i, j) => (classIdx[i] = j));
  const unknownCall = Float64Array.from(unknownOps, (i) => ops[i].call);
  stats.unknown = nUnknown;

  /** Model step: the next state, or -1 when the operation is illegal in state s. */
  const step = (i: number, s: number): number => {
    switch (code[i]) {
      case OP_GET:
        return s === opA[i] ? s : -1;
      case OP_PUT:
        return opB[i];
      case OP_CAS_OK:
        return s === opA[i] ? opB[i] : -1;
      case OP_CAS_FAIL:
        return s !== opA[i] ? s : -1;
      default: // OP_CAS_UNKNOWN: applies iff the compare holds
        return s === opA[i] ? opB[i] : s;
    }
  };

  // Event list of the known operations, sorted by time, calls before returns at equal
  // times. Node 0 = head sentinel, nodes 1..2*nKnown = events, last node = tail sentinel.
  const events: { time: number; isCall: boolean; op: number }[] = [];
  for (let i = 0; i < n; i++) {
    if (isUnknown(i)) continue;
    events.push({ time: ops[i].call, isCall: true, op: i });
    events.push({ time: ops[i].ret, isCall: false, op: i });
  }
  events.sort((x, y) => {
    if (x.time !== y.time) return x.time < y.time ? -1 : 1;
    if (x.isCall !== y.isCall) return x.isCall ? -1 : 1;
    return x.op - y.op;
  });
  const size = events.length + 2;
  const tail = size - 1;
  const next = new Int32Array(size);
  const prev = new Int32Array(size);
  const nodeOp = new Int32Array(size).fill(-1);
  const nodeIsCall = new Uint8Array(size);
  const nodeTime = new Float64Array(size);
  const match = new Int32Array(size); // call node -> its return node
  const callNodeOf = new Int32Array(n);
  for (let k = 0; k < events.length; k++) {
    const node = k + 1;
    const e = events[k];
    nodeOp[node] = e.op;
    nodeIsCall[node] = e.isCall ? 1 : 0;
    nodeTime[node] = e.time;
    if (e.isCall) callNodeOf[e.op] = node;
    else match[callNodeOf[e.op]] = node;
  }
  nodeTime[tail] = Infinity;
  for (let node = 0; node < size; node++) {
    next[node] = node + 1 < size ? node + 1 : -1;
    prev[node] = node - 1;
  }
  const lift = (c: number) => {
    next[prev[c]] = next[c];
    prev[next[c]] = prev[c];
    const r = match[c];
    next[prev[r]] = next[r];
    prev[next[r]] = prev[r];
  };
  const unlift = (c: number) => {
    const r = match[c];
    next[prev[r]] = r;
    prev[next[r]] = r;
    next[prev[c]] = c;
    prev[next[c]] = c;
  };

  // Linearized sets: bitsets, plus a Zobrist hash of the known set (two 32-bit halves).
  const kBits = new Uint32Array(Math.max(1, (nKnown + 31) >>> 5));
  const uBits = new Uint32Array(Math.max(1, (nUnknown + 31) >>> 5));
  const rnd = makeRandom(0x9e3779b9 ^ nKnown);
  const z1 = new Int32Array(nKnown);
  const z2 = new Int32Array(nKnown);
  for (let k = 0; k < nKnown; k++) {
    z1[k] = rnd();
    z2[k] = rnd();
  }
  let h1 = 0;
  let h2 = 0;
  const flip = (i: number) => {
    const c = classIdx[i];
    if (isUnknown(i)) {
      uBits[c >>> 5] = (uBits[c >>> 5] ^ (1 << (c & 31))) >>> 0;
    } else {
      kBits[c >>> 5] = (kBits[c >>> 5] ^ (1 << (c & 31))) >>> 0;
      h1 ^= z1[c];
      h2 ^= z2[c];
    }
  };
  const cache = new Map<number, CacheEntry[]>();
  /**
   * Memoizes the current sets with state s; returns the new entry, or undefined when the
   * configuration is a repeat or dominated by a finished one.
   */
  const remember = (s: number, pre: number): CacheEntry | undefined => {
    const k = ((h1 ^ Math.imul(s, 0x9e3779b1)) >>> 0) * 0x200000 + ((h2 ^ Math.imul(s, 0x85ebca6b)) & 0x1fffff);
    let bucket = cache.get(k);
    if (bucket) {
      for (const e of bucket) {
        if (e.state !== s || (e.pre !== NO_CONSTRAINT && e.pre !== pre) || !sameBits(e.known, kBits)) continue;
        if (sameBits(e.unknown, uBits)) return undefined;
        if (e.finished && subsetBits(e.unknown, uBits)) return undefined;
      }
    } else {
      bucket = [];
      cache.set(k, bucket);
    }
    const entry: CacheEntry = { state: s, pre, known: kBits.slice(), unknown: uBits.slice(), finished: false };
    bucket.push(entry);
    stats.cacheEntries++;
    return entry;
  };
  const unknownLinearized = new Uint8Array(nUnknown);

  // Search stack: the linearized op, the state and constraint before it, its cache entry,
  // whether it was a forced move, and for an unknown op the time bound its candidates were
  // taken under.
  const stackOp = new Int32Array(n);
  const stackState = new Int32Array(n);
  const stackPre = new Int32Array(n);
  const stackForced = new Uint8Array(n);
  const stackLimit = new Float64Array(n);
  const stackEntry: CacheEntry[] = [];
  let depth = 0;
  let state = NULL_VALUE;
  let pre = NO_CONSTRAINT;
  // Longest linearizable prefix seen (snapshotted lazily when backtracking from a new maximum).
  let bestDepth = 0;
  let bestOps = new Int32Array(0);
  let atNewMax = false;

  const push = (i: number, ns: number, entry: CacheEntry, forced: boolean, limit: number) => {
    stackOp[depth] = i;
    stackState[depth] = state;
    stackPre[depth] = pre;
    stackForced[depth] = forced ? 1 : 0;
    stackLimit[depth] = limit;
    stackEntry[depth] = entry;
    depth++;
    if (depth > bestDepth) {
      bestDepth = depth;
      atNewMax = true;
    }
    pre = isUnknown(i) ? state : NO_CONSTRAINT;
    state = ns;
  };
  /** May known op i (legal now) come next under the current constraint? */
  const allowed = (i: number) => pre === NO_CONSTRAINT || step(i, pre) < 0;

  // The walk. Modes: FRESH = just arrived at a configuration; MAIN = scanning the event list
  // at `entry`; UNKNOWN = scanning the unknown ops from `uPos`, bounded by the time `limit`
  // of the first return event; BACKTRACK = the configuration is exhausted.
  const FRESH = 0;
  const MAIN = 1;
  const UNKNOWN = 2;
  const BACKTRACK = 3;
  let mode = FRESH;
  let entry = 0;
  let uPos = 0;
  let limit = 0;
  let steps = 0;
  for (;;) {
    if ((++steps & 0xfff) === 0 && performance.now() > deadline) {
      stats.steps = steps;
      return {
        ok: false,
        timedOut: true,
        reason:
          `key ${JSON.stringify(key)}: check timed out after ${steps} steps and ${stats.cacheEntries} memoized states ` +
          `(${n} operations, ${nUnknown} with unknown outcome; deepest linearized prefix ${Math.max(bestDepth, depth)})`,
        stats,
      };
    }
    if (mode === FRESH) {
      if (next[0] === tail) {
        stats.steps = steps;
        return { ok: true, stats };
      }
      // Forced move: a known op that leaves the value unchanged (get, failed cas) and is legal
      // now can be moved to the front of any completion, so it is the only child to try.
      let forced = -1;
      for (let node = next[0]; nodeIsCall[node]; node = next[node]) {
        const i = nodeOp[node];
        if ((code[i] === OP_GET || code[i] === OP_CAS_FAIL) && step(i, state) >= 0 && allowed(i)) {
          forced = node;
          break;
        }
      }
      if (forced >= 0) {
        const i = nodeOp[forced];
        flip(i);
        const e = remember(state, NO_CONSTRAINT);
        if (e) {
          push(i, state, e, true, 0);
          lift(forced);
        } else {
          flip(i);
          mode = BACKTRACK;
        }
        continue;
      }
      mode = MAIN;
      entry = next[0];
    }
    if (mode === MAIN) {
      if (nodeIsCall[entry]) {
        const i = nodeOp[entry];
        const ns = step(i, state);
        if (ns >= 0 && allowed(i)) {
          flip(i);
          const e = remember(ns, NO_CONSTRAINT);
          if (e) {
            push(i, ns, e, false, 0);
            lift(entry);
            mode = FRESH;
            continue;
          }
          flip(i);
        }
        entry = next[entry];
        continue;
      }
      // A return event: the known candidates are exhausted; try the unknown ops called by then.
      mode = UNKNOWN;
      limit = nodeTime[entry];
      uPos = 0;
    }
    if (mode === UNKNOWN) {
      for (; uPos < nUnknown && unknownCall[uPos] <= limit; uPos++) {
        if (unknownLinearized[uPos]) continue;
        const i = unknownOps[uPos];
        const ns = step(i, state);
        if (ns === state) continue; // a no-op now; it can always go at the end instead
        if (pre !== NO_CONSTRAINT && step(i, pre) !== pre) continue; // does not need the previous unknown op
        flip(i);
        const e = remember(ns, state);
        if (!e) {
          flip(i);
          continue;
        }
        push(i, ns, e, false, limit);
        unknownLinearized[uPos] = 1;
        mode = FRESH;
        break;
      }
      if (mode === FRESH) continue;
      mode = BACKTRACK;
    }
    // BACKTRACK: undo the last linearization; a forced one leaves its parent exhausted too.
    if (atNewMax) {
      bestOps = stackOp.slice(0, depth);
      atNewMax = false;
    }
    if (depth === 0) {
      stats.steps = steps;
      return { ok: false, reason: explain(), stats };
    }
    depth--;
    const i = stackOp[depth];
    stackEntry[depth].finished = true;
    state = stackState[depth];
    pre = stackPre[depth];
    flip(i);
    if (isUnknown(i)) {
      const j = classIdx[i];
      unknownLinearized[j] = 0;
      mode = UNKNOWN;
      limit = stackLimit[depth];
      uPos = j + 1;
    } else {
      const c = callNodeOf[i];
      unlift(c);
      if (stackForced[depth]) {
        mode = BACKTRACK;
      } else {
        mode = MAIN;
        entry = next[c];
      }
    }
  }

  function explain(): string {
    // Trailing unknown ops of the deepest prefix were only speculative; leave them out.
    const lin = Array.from(bestOps);
    while (lin.length > 0 && isUnknown(lin[lin.length - 1])) lin.pop();
    const placed = new Set(lin);
    const after: number[] = [];
    let value = NULL_VALUE;
    for (const i of lin) {
      value = step(i, value);
      after.push(value);
    }
    const knownPlaced = lin.filter((i) => !isUnknown(i)).length;
    const lines: string[] = [];
    lines.push(
      `key ${JSON.stringify(key)}: not linearizable. At most ${knownPlaced} of its ${nKnown} completed operations ` +
        `could be linearized (plus ${lin.length - knownPlaced} of ${nUnknown} with unknown outcome); ` +
        `after that prefix the value is ${showValue(names[value])}.`,
    );
    const tailLen = Math.min(lin.length, 8);
    if (tailLen > 0) {
      lines.push(`Last ${tailLen} operations of that prefix (in linearization order):`);
      for (let k = lin.length - tailLen; k < lin.length; k++) {
        lines.push(`  ${describeOperation(ops[lin[k]], indexOf[lin[k]])}   => ${showValue(names[after[k]])}`);
      }
    }
    // The unplaced completed operation that returns first must come next or earlier; the
    // candidates are the unplaced operations called before (or at) that return.
    let firstRet = -1;
    for (let i = 0; i < n; i++) {
      if (placed.has(i) || isUnknown(i)) continue;
      if (firstRet < 0 || ops[i].ret < ops[firstRet].ret) firstRet = i;
    }
    if (firstRet < 0) return lines.join('\n');
    const bound = ops[firstRet].ret;
    lines.push(
      `Next, ${describeOperation(ops[firstRet], indexOf[firstRet])} must be linearized by its return at ${showTime(bound)}. ` +
        `Completed operations that could come next (called by then, not yet placed):`,
    );
    let shown = 0;
    const pendingUnknown: number[] = [];
    for (let i = 0; i < n; i++) {
      if (placed.has(i) || ops[i].call > bound) continue;
      if (isUnknown(i)) {
        pendingUnknown.push(i);
        continue;
      }
      if (shown++ >= 12) continue;
      const ns = step(i, value);
      let why: string;
      if (ns >= 0) why = 'legal here, but every continuation fails later';
      else if (code[i] === OP_GET) why = `illegal: it read ${showValue(names[opA[i]])} but the value is ${showValue(names[value])}`;
      else if (code[i] === OP_CAS_OK) why = `illegal: it succeeded expecting ${showValue(names[opA[i]])} but the value is ${showValue(names[value])}`;
      else why = `illegal: it failed although the value is the expected ${showValue(names[value])}`;
      lines.push(`  ${describeOperation(ops[i], indexOf[i])}: ${why}`);
    }
    if (shown > 12) lines.push(`  ... and ${shown - 12} more`);
    if (pendingUnknown.length > 0) {
      lines.push(
        `Operations with unknown outcome pending by then (none of them can make it work): ${pendingUnknown.length}, e.g. ` +
          pendingUnknown
            .slice(0, 3)
            .map((i) => describeOperation(ops[i], indexOf[i]))
            .join('; '),
      );
    }
    return lines.join('\n');
  }
}

/**
 * Checks that a history of get/put/cas operations is linearizable. Keys are
 * checked independently; the first failing key (in sorted order) is reported.
 */
export function checkHistory(ops: Operation[], opts: CheckOptions = {}): CheckResult {
  const deadline = performance.now() + (opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const byKey = new Map<string, { ops: Operation[]; index: number[] }>();
  ops.forEach((op, i) => {
    validate(op, i);
    if (op.kind === 'get' && !Number.isFinite(op.ret)) return; // an unknown read tells nothing
    let part = byKey.get(op.key);
    if (!part) {
      part = { ops: [], index: [] };
      byKey.set(op.key, part);
    }
    part.ops.push(op);
    part.index.push(i);
  });
  const stats: KeyCheckStats[] = [];
  for (const key of [...byKey.keys()].sort()) {
    const part = byKey.get(key) as { ops: Operation[]; index: number[] };
    const r = checkKey(key, part.ops, part.index, deadline);
    stats.push(r.stats);
    if (!r.ok) return { ok: false, key, reason: r.reason, ...(r.timedOut ? { timedOut: true } : {}), stats };
  }
  return { ok: true, stats };
}
