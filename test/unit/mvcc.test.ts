// MVCC store semantics on a real RocksDB in a temp dir: revisions, versions, generations, reads at past
// revisions, compaction (logical and physical), restart rebuilding the index, and hashes.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Backend, WriteBatch } from '../../src/storage';
import { MvccStore } from '../../src/mvcc';
import { KeyIndex } from '../../src/mvcc/keyIndex';

const b = (s: string) => Buffer.from(s);
const str = (kvs: { key: Buffer; value: Buffer }[]) => kvs.map((kv) => `${kv.key}=${kv.value}`);

describe('KeyIndex', () => {
  test('versions and generations across delete and re-create', () => {
    const ki = new KeyIndex('k');
    ki.put({ main: 2, sub: 0 });
    ki.put({ main: 3, sub: 0 });
    ki.tombstone({ main: 4, sub: 0 });
    ki.put({ main: 6, sub: 0 });
    expect(ki.get(1)).toBeUndefined();
    expect(ki.get(2)).toEqual({ modified: { main: 2, sub: 0 }, created: { main: 2, sub: 0 }, version: 1 });
    expect(ki.get(3)?.version).toBe(2);
    expect(ki.get(4)).toBeUndefined();
    expect(ki.get(5)).toBeUndefined();
    expect(ki.get(6)).toEqual({ modified: { main: 6, sub: 0 }, created: { main: 6, sub: 0 }, version: 1 });
  });

  test('compaction keeps the newest revision at or below the compact point', () => {
    const ki = new KeyIndex('k');
    ki.put({ main: 2, sub: 0 });
    ki.put({ main: 3, sub: 0 });
    ki.put({ main: 5, sub: 0 });
    const keep = new Set<string>();
    ki.compact(4, keep);
    expect([...keep]).toEqual(['3_0']);
    expect(ki.get(4)?.modified.main).toBe(3);
    expect(ki.get(4)?.version).toBe(2);
    expect(ki.get(5)?.version).toBe(3);
  });

  test('compaction drops a generation that ended before the compact point, tombstone included', () => {
    const ki = new KeyIndex('k');
    ki.put({ main: 2, sub: 0 });
    ki.tombstone({ main: 3, sub: 0 });
    const keep = new Set<string>();
    ki.compact(3, keep);
    expect(keep.size).toBe(0);
    expect(ki.isEmpty()).toBe(true);
  });
});

describe('MvccStore', () => {
  let dir: string;
  let backend: Backend;
  let store: MvccStore;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-ts-mvcc-'));
    backend = await Backend.open(dir);
    store = await MvccStore.open(backend);
  });
  afterEach(async () => {
    await store.compactionsDone();
    await backend.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const write = (fn: (t: ReturnType<MvccStore['beginWrite']>) => void) => {
    const t = store.beginWrite();
    fn(t);
    const batch = new WriteBatch();
    t.commit(batch);
    backend.write(batch, false);
    store.flushed();
    return t;
  };

  test('txns applied into one batch read each other before the batch is written', () => {
    const batch = new WriteBatch();
    const t1 = store.beginWrite();
    t1.put(b('k'), b('1'), '0');
    t1.commit(batch);
    const t2 = store.beginWrite();
    const prev = t2.get(b('k'));
    expect(prev?.value.toString()).toBe('1');
    t2.put(b('k'), b('2'), '0', prev);
    t2.commit(batch);
    expect(store.range(b('k'), undefined, { rev: 2 }).kvs[0].value.toString()).toBe('1');
    backend.write(batch, false);
    store.flushed();
    expect(store.range(b('k'), undefined).kvs[0]).toMatchObject({ version: 2, mod_revision: 3, create_revision: 2 });
    expect(store.range(b('k'), undefined, { rev: 2 }).kvs[0].value.toString()).toBe('1');
  });

  test('a new store is at revision 1 and each write txn adds one revision', () => {
    expect(store.currentRev).toBe(1);
    write((t) => t.put(b('a'), b('1'), '0'));
    expect(store.currentRev).toBe(2);
    write((t) => {
      t.put(b('b'), b('2'), '0');
      t.put(b('c'), b('3'), '0');
    });
    expect(store.currentRev).toBe(3);
    const r = store.range(b('a'), b('d'));
    expect(str(r.kvs)).toEqual(['a=1', 'b=2', 'c=3']);
    expect(r.kvs.map((kv) => kv.mod_revision)).toEqual([2, 3, 3]);
    expect(r.count).toBe(3);
  });

  test('a txn that only reads does not create a revision', () => {
    write((t) => t.range(b('a'), undefined));
    expect(store.currentRev).toBe(1);
  });

  test('reads at past revisions, and compacted / future errors', () => {
    write((t) => t.put(b('a'), b('1'), '0')); // 2
    write((t) => t.put(b('a'), b('2'), '0')); // 3
    write((t) => t.deleteRange(b('a'), undefined)); // 4
    expect(str(store.range(b('a'), undefined, { rev: 2 }).kvs)).toEqual(['a=1']);
    expect(store.range(b('a'), undefined, { rev: 3 }).kvs[0].version).toBe(2);
    expect(store.range(b('a'), undefined, { rev: 4 }).kvs).toEqual([]);
    expect(() => store.range(b('a'), undefined, { rev: 5 })).toThrow('etcdserver: mvcc: required revision is a future revision');
    const batch = new WriteBatch();
    store.compact(3, batch);
    backend.write(batch, false);
    expect(() => store.range(b('a'), undefined, { rev: 2 })).toThrow('etcdserver: mvcc: required revision has been compacted');
    expect(str(store.range(b('a'), undefined, { rev: 3 }).kvs)).toEqual(['a=2']);
    expect(() => store.compact(3, new WriteBatch())).toThrow('compacted');
    expect(() => store.compact(9, new WriteBatch())).toThrow('future revision');
  });

  test('range end conventions: single key, prefix end, "\\0" means all keys from key', () => {
    write((t) => {
      for (const k of ['a', 'ab', 'b', 'c']) t.put(b(k), b(k), '0');
    });
    expect(store.range(b('a'), undefined).kvs.length).toBe(1);
    expect(store.range(b('a'), b('b')).kvs.length).toBe(2);
    expect(store.range(b('b'), Buffer.from([0])).kvs.length).toBe(2);
    expect(store.range(Buffer.from([0]), Buffer.from([0])).kvs.length).toBe(4);
    const limited = store.range(Buffer.from([0]), Buffer.from([0]), { limit: 1 });
    expect(limited.kvs.length).toBe(1);
    expect(limited.count).toBe(4);
    expect(store.range(Buffer.from([0]), Buffer.from([0]), { countOnly: true })).toMatchObject({ kvs: [], count: 4 });
  });

  test('reads inside a write txn see its own writes', () => {
    write((t) => {
      t.put(b('a'), b('1'), '0');
      expect(str(t.range(b('a'), undefined).kvs)).toEqual(['a=1']);
      t.put(b('a'), b('2'), '0');
      const kv = t.get(b('a'));
      expect(kv?.version).toBe(2);
      expect(kv?.value.toString()).toBe('2');
    });
  });

  test('physical compaction removes old revisions from disk; restart rebuilds the same view', async () => {
    for (let i = 0; i < 5; i++) write((t) => t.put(b('k'), b(String(i)), '0')); // revs 2..6
    write((t) => t.put(b('gone'), b('x'), '0')); // 7
    write((t) => t.deleteRange(b('gone'), undefined)); // 8
    const hashBefore = await store.hashKV(0);
    const batch = new WriteBatch();
    const { done } = store.compact(8, batch);
    backend.write(batch, false);
    await done;
    let stored = 0;
    await backend.scan(Buffer.from('K'), Buffer.from('L'), () => {
      stored++;
    });
    expect(stored).toBe(1); // only k@6 remains: the tombstoned key is gone entirely
    const hashAfter = await store.hashKV(0);
    expect(hashAfter.compactRev).toBe(8);
    expect(hashAfter.hash).not.toBe(hashBefore.hash);
    await backend.close();
    backend = await Backend.open(dir);
    store = await MvccStore.open(backend);
    expect(store.currentRev).toBe(8);
    expect(store.compactRev).toBe(8);
    const r = store.range(b('k'), undefined);
    expect(r.kvs[0]).toMatchObject({ version: 5, create_revision: 2, mod_revision: 6 });
    expect(store.range(b('gone'), undefined).kvs).toEqual([]);
    expect((await store.hashKV(0)).hash).toBe(hashAfter.hash);
  });
});
