// The sorted in-memory index of every key's history. Keys are held as latin1 strings: one char per byte,
// so JavaScript's string order is exactly etcd's byte order.
import BTree from 'sorted-btree';
import { KeyAt, KeyIndex } from './keyIndex';
import { Revision } from './revision';

export interface IndexHit extends KeyAt {
  key: string;
}

export class TreeIndex {
  private readonly tree = new BTree<string, KeyIndex>();

  put(key: string, rev: Revision): void {
    let ki = this.tree.get(key);
    if (!ki) {
      ki = new KeyIndex(key);
      this.tree.set(key, ki);
    }
    ki.put(rev);
  }

  /** Returns false when the key is not live (nothing to delete). */
  tombstone(key: string, rev: Revision): boolean {
    const ki = this.tree.get(key);
    if (!ki || !ki.isLive()) return false;
    ki.tombstone(rev);
    return true;
  }

  get(key: string, atRev: number): KeyAt | undefined {
    return this.tree.get(key)?.get(atRev);
  }

  /**
   * Visits keys live at atRev in [key, end) in order; `end` undefined means the single key, and '' after
   * a non-empty key never happens (callers map etcd's "\0" range end to undefined upper bound via `toEnd`).
   * The visitor returns false to stop.
   */
  range(key: string, end: string | null | undefined, atRev: number, visit: (hit: IndexHit) => boolean | void): void {
    if (end === undefined) {
      const at = this.get(key, atRev);
      if (at) visit({ key, ...at });
      return;
    }
    // sorted-btree stops a scan when the callback returns {break: ...}; its typings omit that.
    const onEntry = ((k: string, ki: KeyIndex): { break: true } | void => {
      const at = ki.get(atRev);
      if (at && visit({ key: k, ...at }) === false) return { break: true };
    }) as (k: string, ki: KeyIndex) => void;
    if (end === null) {
      // unbounded above
      const maxKey = this.tree.maxKey();
      if (maxKey === undefined || maxKey < key) return;
      this.tree.forRange(key, maxKey, true, onEntry);
    } else {
      if (end <= key) return;
      this.tree.forRange(key, end, false, onEntry);
    }
  }

  /** Compacts every key's history at atRev; returns the revision ids that must stay stored. */
  compact(atRev: number): Set<string> {
    const keep = new Set<string>();
    const emptied: string[] = [];
    this.tree.forEach((ki, k) => {
      ki.compact(atRev, keep);
      if (ki.isEmpty()) emptied.push(k);
    });
    for (const k of emptied) this.tree.delete(k);
    return keep;
  }

  /** Number of keys live at the newest revision. */
  liveKeys(): number {
    let n = 0;
    this.tree.forEach((ki) => {
      if (ki.isLive()) n++;
    });
    return n;
  }

  /** Restores one stored revision while rebuilding the index at startup (revisions arrive in order). */
  restore(key: string, rev: Revision, tombstone: boolean): void {
    if (tombstone) {
      const ki = this.tree.get(key);
      if (ki && ki.isLive()) ki.tombstone(rev);
      return;
    }
    this.put(key, rev);
  }
}
