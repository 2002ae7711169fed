// A binary min-heap of (time, lease id) entries that knows where each entry sits, so an entry can be
// moved (a renewal) or removed (a revocation) in O(log n) instead of being found by a scan. The lessor keeps
// one for expiries and one for scheduled checkpoints. Ties on time are broken by id so that the order in
// which leases come out never depends on insertion history.

export interface QueueEntry {
  readonly id: bigint;
  /** clock time (ms) at which the entry is due */
  time: number;
  /** position in the heap array; -1 once the entry has left the heap */
  index: number;
}

function before(a: QueueEntry, b: QueueEntry): boolean {
  return a.time < b.time || (a.time === b.time && a.id < b.id);
}

export class LeaseQueue {
  private readonly heap: QueueEntry[] = [];
  /** Element moves done by sift operations since creation: the heap's work, which tests bound. */
  swaps = 0;

  get size(): number {
    return this.heap.length;
  }

  peek(): QueueEntry | undefined {
    return this.heap[0];
  }

  push(id: bigint, time: number): QueueEntry {
    const entry: QueueEntry = { id, time, index: this.heap.length };
    this.heap.push(entry);
    this.up(entry.index);
    return entry;
  }

  pop(): QueueEntry | undefined {
    const top = this.heap[0];
    if (top !== undefined) this.remove(top);
    return top;
  }

  /** Moves `entry` to its place after its time changed. */
  update(entry: QueueEntry, time: number): void {
    entry.time = time;
    if (!this.down(entry.index)) this.up(entry.index);
  }

  remove(entry: QueueEntry): void {
    const i = entry.index;
    if (i < 0 || this.heap[i] !== entry) return;
    const last = this.heap.pop() as QueueEntry;
    entry.index = -1;
    if (last === entry) return;
    this.heap[i] = last;
    last.index = i;
    if (!this.down(i)) this.up(i);
  }

  clear(): void {
    for (const entry of this.heap) entry.index = -1;
    this.heap.length = 0;
  }

  /** Replaces the contents with `entries` in O(n) (bottom-up heap construction). */
  rebuild(entries: { id: bigint; time: number }[]): QueueEntry[] {
    this.clear();
    const made = entries.map((e, index): QueueEntry => ({ id: e.id, time: e.time, index }));
    this.heap.push(...made);
    for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.down(i);
    return made;
  }

  private place(entry: QueueEntry, i: number): void {
    this.heap[i] = entry;
    entry.index = i;
    this.swaps++;
  }

  private up(i: number): void {
    const entry = this.heap[i];
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(entry, this.heap[parent])) break;
      this.place(this.heap[parent], i);
      i = parent;
    }
    this.heap[i] = entry;
    entry.index = i;
  }

  /** Sifts the entry at `i` down; returns whether it moved. */
  private down(i: number): boolean {
    const n = this.heap.length;
    const entry = this.heap[i];
    const start = i;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && before(this.heap[right], this.heap[left]) ? right : left;
      if (!before(this.heap[child], entry)) break;
      this.place(this.heap[child], i);
      i = child;
    }
    this.heap[i] = entry;
    entry.index = i;
    return i !== start;
  }
}
