// The in-memory history of one key: its generations. A generation runs from the put that created the key
// to the delete (tombstone) that ended it; `ver` counts the changes made in it, including ones compaction
// has since dropped from `revs`, so the version at any kept revision stays exact.
import { Revision } from './revision';

export interface Generation {
  ver: number;
  created: Revision;
  revs: Revision[];
}

/** Shared, never mutated: put() replaces it with a fresh array. */
const EMPTY: Generation[] = [];

export interface KeyAt {
  modified: Revision;
  created: Revision;
  version: number;
}

const NO_REVISION: Revision = Object.freeze({ main: 0, sub: 0 });

export class KeyIndex {
  modified: Revision = NO_REVISION;
  generations: Generation[] = EMPTY;

  constructor(readonly key: string) {}

  put(rev: Revision): void {
    this.modified = rev;
    // Arrays are created with their first element (exact capacity): most keys have one generation
    // with one revision, and an empty array grown by push reserves room for 16.
    if (this.generations.length === 0) {
      this.generations = [{ ver: 1, created: rev, revs: [rev] }];
      return;
    }
    const last = this.generations.length - 1;
    const g = this.generations[last];
    if (g.revs.length === 0) {
      this.generations[last] = { ver: 1, created: rev, revs: [rev] };
      return;
    }
    g.revs.push(rev);
    g.ver++;
  }

  /** Records a delete at `rev` and opens a new (empty) generation. The key must be live. */
  tombstone(rev: Revision): void {
    if (!this.isLive()) throw new Error(`keyIndex: tombstone on a deleted key ${JSON.stringify(this.key)}`);
    this.put(rev);
    this.generations.push({ ver: 0, created: NO_REVISION, revs: [] });
  }

  isLive(): boolean {
    const last = this.generations[this.generations.length - 1];
    return last !== undefined && last.revs.length > 0;
  }

  isEmpty(): boolean {
    return this.generations.length === 0 || (this.generations.length === 1 && this.generations[0].revs.length === 0);
  }

  /** The key's state as of main revision `atRev`, or undefined if it did not exist then. */
  get(atRev: number): KeyAt | undefined {
    const gens = this.generations;
    for (let gi = gens.length - 1; gi >= 0; gi--) {
      const g = gens[gi];
      if (g.revs.length === 0) continue;
      const closed = gi < gens.length - 1;
      if (closed && g.revs[g.revs.length - 1].main <= atRev) return undefined; // deleted by then
      if (g.revs[0].main > atRev) continue; // this generation started later
      for (let i = g.revs.length - 1; i >= 0; i--) {
        if (g.revs[i].main <= atRev) {
          return { modified: g.revs[i], created: g.created, version: g.ver - (g.revs.length - 1 - i) };
        }
      }
    }
    return undefined;
  }

  /**
   * Drops history below `atRev`, keeping for each generation the newest revision at or below it (a read at
   * atRev still needs it). Adds the revisions that must stay on disk to `keep`. A generation that ended at
   * or before atRev disappears entirely, tombstone included.
   */
  compact(atRev: number, keep: Set<string>): void {
    if (this.isEmpty()) return;
    let gi = 0;
    while (gi < this.generations.length - 1) {
      const g = this.generations[gi];
      if (g.revs[g.revs.length - 1].main > atRev) break;
      gi++;
    }
    const g = this.generations[gi];
    if (g.revs.length > 0) {
      let idx = -1;
      for (let i = g.revs.length - 1; i >= 0; i--) {
        if (g.revs[i].main <= atRev) {
          idx = i;
          break;
        }
      }
      if (idx !== -1) {
        g.revs = g.revs.slice(idx);
        if (g.revs.length === 1 && gi !== this.generations.length - 1) {
          gi++; // only the tombstone is left: the whole generation is history
        } else {
          keep.add(revId(g.revs[0]));
        }
      }
    }
    this.generations = this.generations.slice(gi);
  }
}

export function revId(rev: Revision): string {
  return `${rev.main}_${rev.sub}`;
}
