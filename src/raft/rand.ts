// The only source of randomness in the Raft core (election timeout jitter): injected, so that a seeded
// generator makes a whole cluster's behaviour reproducible. `SeededRandom` is a small 32-bit generator
// (mulberry32) — plenty for jitter and for the deterministic simulation; a server may inject any
// implementation (e.g. one seeded from crypto.randomBytes).

export interface RandomSource {
  /** a uniformly distributed integer in [0, bound); bound >= 1 */
  nextInt(bound: number): number;
}

export class SeededRandom implements RandomSource {
  private state: number;

  constructor(seed: number) {
    // Fold the seed (any safe integer) into 32 bits so large seeds still differ.
    this.state = (Math.floor(seed) ^ Math.floor(seed / 0x1_0000_0000)) >>> 0;
  }

  /** uniform in [0, 1) */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000;
  }

  nextInt(bound: number): number {
    return Math.floor(this.next() * bound);
  }

  /** true with probability p */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** a uniformly chosen element; the array must not be empty */
  pick<T>(items: readonly T[]): T {
    return items[this.nextInt(items.length)];
  }
}
