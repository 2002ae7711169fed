// The backend side of maintenance: defragmentation into a new generation (data intact, space released,
// old generation gone, reopen finds the new one), recovery from a crash at each step (leftover generation
// folders, a half-written pointer), the original single-folder layout, and defragmentation waiting for
// running scans while holding back new ones.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Backend, WriteBatch } from '../../src/storage';
import { locateDb } from '../../src/storage/backend';

const b = (s: string) => Buffer.from(s);

async function all(backend: Backend): Promise<string[]> {
  const out: string[] = [];
  await backend.scan(Buffer.from([0]), Buffer.from([0xff]), (k, v) => {
    out.push(`${k.toString()}=${v.length > 20 ? `<${v.length}>` : v.toString()}`);
  });
  return out;
}

describe('Backend generations and defragment', () => {
  let parent: string;
  let dbDir: string;

  beforeEach(() => {
    parent = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-ts-defrag-'));
    dbDir = path.join(parent, 'member', 'rocksdb');
  });
  afterEach(() => fs.rmSync(parent, { recursive: true, force: true }));

  test('a new database is generation 0 at the named path (the original layout)', async () => {
    const backend = await Backend.open(dbDir);
    expect(backend.generation).toBe(0);
    expect(backend.currentDir).toBe(path.resolve(dbDir));
    const batch = new WriteBatch();
    batch.put(b('k'), b('v'));
    backend.write(batch, true);
    await backend.close();
    expect(fs.existsSync(path.join(dbDir, 'CURRENT'))).toBe(true);
    expect(fs.readdirSync(path.dirname(dbDir))).toEqual(['rocksdb']);
  });

  test('defragment keeps every pair, releases deleted data, survives reopen; repeatable', async () => {
    let backend = await Backend.open(dbDir);
    const batch = new WriteBatch();
    for (let i = 0; i < 200; i++) batch.put(b(`big/${String(i).padStart(3, '0')}`), crypto.randomBytes(50_000));
    batch.put(b('keep/a'), b('1'));
    batch.put(b('keep/b'), b('2'));
    backend.write(batch, true);
    await backend.deleteRange(b('big/'), b('big0'));
    const before = backend.sizeOnDisk();
    const expected = await all(backend);
    expect(expected).toEqual(['keep/a=1', 'keep/b=2']);

    const result = await backend.defragment();
    expect(result.generation).toBe(1);
    expect(result.keys).toBe(2);
    expect(backend.generation).toBe(1);
    expect(backend.sizeOnDisk()).toBeLessThan(before / 10);
    expect(await all(backend)).toEqual(expected);
    expect(fs.readdirSync(path.dirname(dbDir)).sort()).toEqual(['rocksdb.current', 'rocksdb.gen-1']);

    // writes after the switch land in the new generation
    const more = new WriteBatch();
    more.put(b('keep/c'), b('3'));
    backend.write(more, true);
    await backend.close();

    backend = await Backend.open(dbDir);
    expect(backend.generation).toBe(1);
    expect(await all(backend)).toEqual([...expected, 'keep/c=3']);
    await backend.defragment();
    await backend.defragment();
    expect(backend.generation).toBe(3);
    expect(fs.readdirSync(path.dirname(dbDir)).sort()).toEqual(['rocksdb.current', 'rocksdb.gen-3']);
    expect(await all(backend)).toEqual([...expected, 'keep/c=3']);
    await backend.close();
  });

  test('crash before the pointer switch: the new generation is garbage and goes', async () => {
    let backend = await Backend.open(dbDir);
    const batch = new WriteBatch();
    batch.put(b('k'), b('old'));
    backend.write(batch, true);
    await backend.close();
    // a half-built next generation and a half-written pointer, as a crash mid-defragment leaves them
    fs.mkdirSync(path.join(parent, 'member', 'rocksdb.gen-1'));
    fs.writeFileSync(path.join(parent, 'member', 'rocksdb.gen-1', '000004.log'), 'partial');
    fs.writeFileSync(path.join(parent, 'member', 'rocksdb.current.tmp'), 'rocksdb.ge');
    backend = await Backend.open(dbDir);
    expect(backend.generation).toBe(0);
    expect(await all(backend)).toEqual(['k=old']);
    expect(fs.readdirSync(path.dirname(dbDir))).toEqual(['rocksdb']);
    await backend.close();
  });

  test('crash after the pointer switch: the old generation is garbage and goes', async () => {
    let backend = await Backend.open(dbDir);
    const batch = new WriteBatch();
    batch.put(b('k'), b('v'));
    backend.write(batch, true);
    await backend.defragment();
    await backend.close();
    // the old generation's removal did not happen (say, killed right after the switch)
    fs.mkdirSync(dbDir);
    fs.writeFileSync(path.join(dbDir, 'CURRENT'), 'stale');
    backend = await Backend.open(dbDir);
    expect(backend.generation).toBe(1);
    expect(await all(backend)).toEqual(['k=v']);
    expect(fs.readdirSync(path.dirname(dbDir)).sort()).toEqual(['rocksdb.current', 'rocksdb.gen-1']);
    await backend.close();
  });

  test('a pointer naming a missing generation refuses to open (never an empty database)', async () => {
    fs.mkdirSync(path.dirname(dbDir), { recursive: true });
    fs.writeFileSync(path.join(path.dirname(dbDir), 'rocksdb.current'), 'rocksdb.gen-7\n');
    await expect(Backend.open(dbDir)).rejects.toThrow(/rocksdb.gen-7, which does not exist/);
    fs.writeFileSync(path.join(path.dirname(dbDir), 'rocksdb.current'), '../../etc\n');
    expect(() => locateDb(dbDir)).toThrow(/not a generation of rocksdb/);
  });

  test('a scan never straddles the switch: defragment waits for running scans, holds new ones', async () => {
    const backend = await Backend.open(dbDir);
    const batch = new WriteBatch();
    for (let i = 0; i < 5000; i++) batch.put(b(`k${String(i).padStart(5, '0')}`), b('v'));
    backend.write(batch, true);
    const scanOnce = async () => {
      const generations = new Set<number>();
      let n = 0;
      await backend.scan(b('k'), b('l'), () => {
        generations.add(backend.generation);
        n++;
      });
      return { n, generations: [...generations] };
    };
    // a walk that pauses mid-way (as a snapshot does while writing its file) is still running when the
    // new generation is ready
    const slowWalk = async () => {
      const generations = new Set<number>();
      let n = 0;
      await backend.consistentScan(async (k) => {
        if (k[0] !== 0x6b) return;
        generations.add(backend.generation);
        if (++n === 10) await new Promise((r) => setTimeout(r, 100));
      });
      return { n, generations: [...generations] };
    };
    const results = [slowWalk(), scanOnce()];
    const defrag = backend.defragment();
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setImmediate(r));
      results.push(scanOnce());
    }
    await defrag;
    for (const r of await Promise.all(results)) {
      expect(r.n).toBe(5000);
      expect(r.generations).toHaveLength(1);
    }
    expect((await scanOnce()).generations).toEqual([1]);
    await backend.close();
  });

  test('close during a defragment: it is abandoned or finished, never half done', async () => {
    for (const delayMs of [0, 1, 5]) {
      const backend = await Backend.open(dbDir);
      const batch = new WriteBatch();
      batch.put(b(`k${delayMs}`), b('v'));
      backend.write(batch, true);
      const defrag = backend.defragment().then(
        () => 'finished',
        (err: Error) => err.message,
      );
      await new Promise((r) => setTimeout(r, delayMs));
      await backend.close();
      expect(['finished', 'backend is closed']).toContain(await defrag);
      const again = await Backend.open(dbDir);
      expect(await all(again)).toEqual(['k0=v', 'k1=v', 'k5=v'].slice(0, [0, 1, 5].indexOf(delayMs) + 1));
      expect(fs.readdirSync(path.dirname(dbDir)).filter((n) => n !== 'rocksdb.current')).toHaveLength(1);
      await again.close();
    }
  });
});
