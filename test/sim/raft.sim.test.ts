// Seeded simulations of the Raft core (see sim.ts): safety invariants after every event, liveness after
// healing. A short fixed set of seeds runs by default (3- and 5-node clusters alternate by seed parity).
//   SIM_SEED=<n> npx jest test/sim      replay one seed (a failure prints this command)
//   SIM_SEEDS=<n> npx jest test/sim     run seeds 1..n (long)
//   SIM_DURATION=<t>                    virtual time of the chaotic phase (default 20000 = 2000 ticks)
import { SimResult, nodesForSeed, runSimulation } from './sim';

const DEFAULT_SEEDS = Array.from({ length: 40 }, (_, i) => i + 1);

function seedsToRun(): number[] {
  if (process.env.SIM_SEED !== undefined) return [Number(process.env.SIM_SEED)];
  if (process.env.SIM_SEEDS !== undefined) {
    const n = Number(process.env.SIM_SEEDS);
    return Array.from({ length: n }, (_, i) => i + 1);
  }
  return DEFAULT_SEEDS;
}

const duration = process.env.SIM_DURATION !== undefined ? Number(process.env.SIM_DURATION) : undefined;
const seeds = seedsToRun();
const results: SimResult[] = [];

describe('raft simulation', () => {
  test.each(seeds.map((s) => [s, nodesForSeed(s)]))(
    'seed %d (%d nodes): safety after every event, liveness after healing',
    (seed) => {
      const result = runSimulation(seed, duration !== undefined ? { duration } : {});
      results.push(result);
      // Not vacuous: the run made progress through leader changes, crashes and reads.
      expect(result.committed).toBeGreaterThan(50);
      expect(result.leaders).toBeGreaterThan(1);
      expect(result.crashes).toBeGreaterThan(0);
      expect(result.reads).toBeGreaterThan(0);
    },
    seeds.length > DEFAULT_SEEDS.length ? 600_000 : 60_000,
  );

  test('the seeds exercised membership changes, snapshots and both pre-vote settings', () => {
    if (seeds.length < 10) return; // a single replayed seed proves nothing about the mix
    const sum = (k: keyof SimResult) => results.reduce((acc, r) => acc + Number(r[k]), 0);
    expect(sum('confChangesCommitted')).toBeGreaterThan(seeds.length);
    expect(sum('snapshotsSent')).toBeGreaterThan(seeds.length);
    expect(results.some((r) => r.preVote) && results.some((r) => !r.preVote)).toBe(true);
    expect(results.some((r) => r.checkQuorum) && results.some((r) => !r.checkQuorum)).toBe(true);
  });
});
