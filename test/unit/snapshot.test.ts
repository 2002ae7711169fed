// The etcd-ts snapshot file format: round trips (whatever the chunking), the 512-byte padding etcdctl
// needs, and refusal of every kind of damage (bad magic, other versions, truncation at any byte, flipped
// bytes, junk after the end). Then snapshots of a real store: taken point-in-time, summarised like
// etcdutl, and restored into a data dir with the same revisions and a new member identity.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Backend, Prefix, WriteBatch, prefixed } from '../../src/storage';
import { MvccStore } from '../../src/mvcc';
import { computeClusterId, computeMemberId } from '../../src/server/members';
import {
  MAGIC,
  META_KEYS,
  PAD_TO,
  SnapshotAnalyzer,
  SnapshotDecoder,
  SnapshotFormatError,
  decodeSnapshot,
  encodeSnapshot,
  humanBytes,
  readSnapshotFile,
  restoreSnapshot,
  sendSnapshot,
  snapshotStatus,
  writeSnapshotFile,
} from '../../src/snapshot';
import { formatStatus, renderTable } from '../../src/bin/snapshot-command';

const b = (s: string) => Buffer.from(s);
const META = { storageVersion: '3.6.0', etcdVersion: '3.6.16', createdAt: '2025-01-01T00:00:00.000Z' };

function sample(): [Buffer, Buffer][] {
  return [
    [b('E\x00\x00\x00\x00\x00\x00\x00\x01'), b('lease')],
    [b('K-rev-1'), Buffer.alloc(0)],
    [Buffer.alloc(0), b('empty key')],
    [b('M/meta'), crypto.randomBytes(3 * 1024 * 1024 + 17)],
    [b('M/x'), b('y')],
  ];
}

/** Content + SHA-256, as etcdctl saves it. */
function withHash(content: Buffer): Buffer {
  return Buffer.concat([content, crypto.createHash('sha256').update(content).digest()]);
}

/** Records as comparable strings (jest's deep equality is very slow on multi-megabyte buffers). */
function digest(records: [Buffer, Buffer][]): string[] {
  return records.map(([k, v]) => `${k.toString('hex')}:${v.length}:${crypto.createHash('sha1').update(v).digest('hex')}`);
}

function decodeInChunks(content: Buffer, sizes: number[]): [Buffer, Buffer][] {
  const out: [Buffer, Buffer][] = [];
  const dec = new SnapshotDecoder((k, v) => out.push([k, v]));
  let at = 0;
  let i = 0;
  while (at < content.length) {
    const n = sizes[i++ % sizes.length];
    dec.push(content.subarray(at, at + n));
    at += n;
  }
  dec.end();
  return out;
}

describe('snapshot format', () => {
  test('round trip; content padded to a multiple of 512 so etcdctl accepts it with the hash', () => {
    const records = sample();
    const content = encodeSnapshot(META, records);
    expect(content.subarray(0, 8).equals(MAGIC)).toBe(true);
    expect(content.length % PAD_TO).toBe(0);
    expect(withHash(content).length % 512).toBe(32);
    const { summary, records: back } = decodeSnapshot(content);
    expect(summary.records).toBe(records.length);
    expect(summary.contentLength).toBe(content.length);
    expect(summary.meta).toEqual(META);
    expect(digest(back)).toEqual(digest(records));
  });

  test('any chunking decodes the same', () => {
    const records = sample();
    const content = encodeSnapshot(META, records);
    const small = records.filter(([, v]) => v.length < 1000);
    const smallContent = encodeSnapshot(META, small);
    for (const sizes of [[1], [7, 1, 3], [511, 513]]) {
      expect(digest(decodeInChunks(smallContent, sizes))).toEqual(digest(small));
    }
    for (const sizes of [[4093], [32 * 1024], [content.length]]) {
      expect(digest(decodeInChunks(content, sizes))).toEqual(digest(records));
    }
  });

  test('an empty store is a valid snapshot', () => {
    const content = encodeSnapshot(META, []);
    expect(content.length).toBe(512);
    expect(decodeSnapshot(content).records).toEqual([]);
  });

  test('truncation at every byte is refused', () => {
    const content = encodeSnapshot(META, [
      [b('k1'), b('v1')],
      [b('k2'), b('v2')],
    ]);
    for (let n = 0; n < content.length; n++) {
      expect(() => decodeSnapshot(content.subarray(0, n))).toThrow(SnapshotFormatError);
    }
  });

  test('a flipped byte anywhere before the end marker is refused', () => {
    const content = encodeSnapshot(META, [
      [b('key-1'), b('value-1')],
      [b('key-2'), b('value-2')],
    ]);
    const endTag = content.lastIndexOf(0xff, content.length - 1);
    for (let i = 0; i < endTag; i++) {
      const bad = Buffer.from(content);
      bad[i] ^= 0x40;
      expect(() => decodeSnapshot(bad)).toThrow(SnapshotFormatError);
    }
  });

  test('bad magic, an etcd bbolt file, another format version, junk after the end', () => {
    const content = encodeSnapshot(META, [[b('k'), b('v')]]);
    const badMagic = Buffer.from(content);
    badMagic[1] = 0x46;
    expect(() => decodeSnapshot(badMagic)).toThrow(/bad magic/);

    const bbolt = Buffer.alloc(4096);
    bbolt.writeUInt32LE(0xed0cdaed, 16);
    expect(() => decodeSnapshot(bbolt)).toThrow(/etcd \(bbolt\) snapshot; restore it with etcdutl/);

    const v2 = Buffer.from(content);
    v2.writeUInt32BE(2, 8);
    expect(() => decodeSnapshot(v2)).toThrow(/format version 2/);

    const junk = Buffer.from(content);
    junk[junk.length - 1] = 1;
    expect(() => decodeSnapshot(junk)).toThrow(/data after the end marker/);

    const extraBlock = Buffer.concat([content, Buffer.alloc(512)]);
    expect(() => decodeSnapshot(extraBlock)).toThrow(/data after the end marker/);
  });

  test('humanBytes matches go-humanize (what etcdutl prints)', () => {
    expect(humanBytes(0)).toBe('0 B');
    expect(humanBytes(9)).toBe('9 B');
    expect(humanBytes(1024)).toBe('1.0 kB');
    expect(humanBytes(20480)).toBe('20 kB');
    expect(humanBytes(21500)).toBe('22 kB');
    expect(humanBytes(1_500_000)).toBe('1.5 MB');
    expect(humanBytes(2_147_483_648)).toBe('2.1 GB');
  });

  test('status output in etcdutl shapes', () => {
    const s = { hash: 0xdd817dc9, revision: 4, totalKey: 1, totalSize: 20480, version: '3.6.0' };
    expect(formatStatus(s, 'simple')).toBe('dd817dc9, 4, 1, 20 kB, 3.6.0\n');
    expect(formatStatus(s, 'json')).toBe('{"hash":3716251081,"revision":4,"totalKey":1,"totalSize":20480,"version":"3.6.0"}\n');
    expect(formatStatus(s, 'table')).toBe(
      [
        '+----------+----------+------------+------------+---------+',
        '|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE | VERSION |',
        '+----------+----------+------------+------------+---------+',
        '| dd817dc9 |        4 |          1 |      20 kB |   3.6.0 |',
        '+----------+----------+------------+------------+---------+',
        '',
      ].join('\n'),
    );
    expect(renderTable(['a'], [['xyz']])).toBe('+-----+\n|  A  |\n+-----+\n| xyz |\n+-----+\n');
  });
});

describe('snapshot files', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-ts-snapfile-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('hash checked; missing hash refused unless skipped; damage refused', () => {
    const content = encodeSnapshot(META, [[b('k'), b('v')]]);
    const good = path.join(dir, 'good.db');
    fs.writeFileSync(good, withHash(content));
    const seen: string[] = [];
    expect(readSnapshotFile(good, (k) => seen.push(k.toString())).records).toBe(1);
    expect(seen).toEqual(['k']);

    const noHash = path.join(dir, 'nohash.db');
    fs.writeFileSync(noHash, content);
    expect(() => readSnapshotFile(noHash, () => undefined)).toThrow('snapshot missing hash but --skip-hash-check=false');
    expect(readSnapshotFile(noHash, () => undefined, { skipHashCheck: true }).records).toBe(1);

    const flipped = withHash(content);
    flipped[20] ^= 1;
    const bad = path.join(dir, 'bad.db');
    fs.writeFileSync(bad, flipped);
    expect(() => readSnapshotFile(bad, () => undefined)).toThrow(/sha256 mismatch/);
    // with the hash skipped, the format's own checksum still catches it
    expect(() => readSnapshotFile(bad, () => undefined, { skipHashCheck: true })).toThrow(SnapshotFormatError);
  });
});

describe('snapshots of a store', () => {
  let dir: string;
  let backend: Backend;
  let store: MvccStore;

  const put = (key: string, value: string) => {
    const txn = store.beginWrite();
    txn.put(b(key), b(value), '0');
    const batch = new WriteBatch();
    txn.commit(batch);
    backend.write(batch, false);
    store.flushed();
  };
  const del = (key: string) => {
    const txn = store.beginWrite();
    txn.deleteRange(b(key), undefined);
    const batch = new WriteBatch();
    txn.commit(batch);
    backend.write(batch, false);
    store.flushed();
  };
  const state = (s: MvccStore, rev = 0) =>
    s.range(b('\0'), Buffer.from([0]), { rev }).kvs.map((kv) => `${kv.key}=${kv.value}@${kv.create_revision}/${kv.mod_revision}/${kv.version}`);

  /** Takes a snapshot the way Maintenance.Snapshot does and saves it with its hash, like etcdctl. */
  async function save(file: string): Promise<void> {
    const snap = await writeSnapshotFile(backend, dir, META);
    const chunks: Buffer[] = [];
    try {
      const sink = {
        cancelled: false,
        write: (m: unknown) => {
          const msg = m as { blob: Buffer; remaining_bytes: number; version: string };
          expect(msg.version).toBe('3.6.0');
          chunks.push(msg.blob);
          return true;
        },
        once: () => undefined,
        removeListener: () => undefined,
      };
      expect(await sendSnapshot(snap, sink, '3.6.0')).toBe('sent');
    } finally {
      await snap.dispose();
    }
    fs.writeFileSync(file, Buffer.concat(chunks));
  }

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-ts-snapstore-'));
    backend = await Backend.open(path.join(dir, 'member', 'rocksdb'));
    store = await MvccStore.open(backend);
  });
  afterEach(async () => {
    await store.compactionsDone();
    await backend.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('status and restore: same revisions and compaction, new member identity, no raft log', async () => {
    put('a', '1'); // 2
    put('b', '2'); // 3
    put('a', '3'); // 4
    del('b'); // 5
    put('c', '4'); // 6
    const batch = new WriteBatch();
    const { done } = store.compact(4, batch);
    backend.write(batch, false);
    await done;
    put('d', '5'); // 7
    // member identity and a raft log entry, as the server stores them
    const identity = new WriteBatch();
    identity.put(META_KEYS.memberId, Buffer.alloc(8, 1));
    identity.put(META_KEYS.clusterId, Buffer.alloc(8, 2));
    identity.put(prefixed(Prefix.meta, 'members/0101010101010101'), b('{}'));
    identity.put(META_KEYS.appliedIndex, Buffer.alloc(8, 9));
    identity.put(prefixed(Prefix.log, Buffer.alloc(8, 0)), b('entry'));
    identity.put(prefixed(Prefix.meta, 'alarm/x'), b('{"memberID":"1","alarm":1}'));
    backend.write(identity, true);

    const file = path.join(dir, 'snap.db');
    await save(file);
    expect(fs.statSync(file).size % 512).toBe(32);

    const status = snapshotStatus(file);
    expect(status.revision).toBe(store.currentRev);
    expect(status.revision).toBe(7);
    expect(status.totalKey).toBe(3); // a, c, d
    expect(status.version).toBe('3.6.0');
    expect(status.totalSize).toBe(fs.statSync(file).size - 32);

    // the raft log is not in the snapshot
    const keys: Buffer[] = [];
    readSnapshotFile(file, (k) => keys.push(k));
    expect(keys.some((k) => k[0] === Prefix.log)).toBe(false);

    const peer = 'http://127.0.0.1:2380';
    const out = path.join(dir, 'restored.etcd');
    const result = await restoreSnapshot({
      snapshotPath: file,
      dataDir: out,
      name: 'm1',
      initialCluster: new Map([['m1', [peer]]]),
      initialClusterToken: 'tok',
      initialAdvertisePeerUrls: [peer],
      skipHashCheck: false,
    });
    const memberId = computeMemberId([peer], 'tok');
    expect(result.memberId).toBe(memberId);
    expect(result.clusterId).toBe(computeClusterId([memberId]));
    expect(result.revision).toBe(7);
    expect(result.compactRevision).toBe(4);
    expect(fs.readdirSync(path.dirname(out)).filter((n) => n.includes('.restore-'))).toEqual([]);

    const rb = await Backend.open(path.join(out, 'member', 'rocksdb'));
    try {
      const rs = await MvccStore.open(rb);
      expect(rs.currentRev).toBe(7);
      expect(rs.compactRev).toBe(4);
      expect(state(rs)).toEqual(state(store));
      expect(state(rs, 5)).toEqual(state(store, 5));
      expect(() => rs.range(b('a'), undefined, { rev: 3 })).toThrow(/compacted/);
      expect(rb.getSync(META_KEYS.memberId)?.readBigUInt64BE(0)).toBe(memberId);
      expect(rb.getSync(META_KEYS.appliedIndex)?.readBigUInt64BE(0)).toBe(1n);
      expect(rb.getSync(prefixed(Prefix.meta, 'members/0101010101010101'))).toBeUndefined();
      expect(rb.getSync(prefixed(Prefix.meta, `members/${memberId.toString(16)}`))).toBeDefined();
      expect(rb.getSync(prefixed(Prefix.log, Buffer.alloc(8, 0)))).toBeUndefined();
      // etcd keeps alarms across a restore; so do we
      expect(rb.getSync(prefixed(Prefix.meta, 'alarm/x'))).toBeDefined();
      await rs.compactionsDone();
    } finally {
      await rb.close();
    }
  });

  test('--bump-revision with --mark-compacted moves the revision on and compacts everything before', async () => {
    put('a', '1');
    put('a', '2');
    const file = path.join(dir, 'snap.db');
    await save(file);
    const peer = 'http://127.0.0.1:2380';
    const out = path.join(dir, 'bumped');
    const opts = {
      snapshotPath: file,
      dataDir: out,
      name: 'm1',
      initialCluster: new Map([['m1', [peer]]]),
      initialClusterToken: 'tok',
      initialAdvertisePeerUrls: [peer],
      skipHashCheck: false,
    };
    await expect(restoreSnapshot({ ...opts, revisionBump: 10 })).rejects.toThrow('--mark-compacted required');
    const result = await restoreSnapshot({ ...opts, revisionBump: 10, markCompacted: true });
    expect(result.revision).toBe(13);
    const rb = await Backend.open(path.join(out, 'member', 'rocksdb'));
    try {
      const rs = await MvccStore.open(rb);
      await rs.compactionsDone();
      expect(rs.currentRev).toBe(13);
      expect(rs.compactRev).toBe(13);
      expect(state(rs)).toEqual(['a=2@2/3/2']);
    } finally {
      await rb.close();
    }
  });

  test('the snapshot is point-in-time: writes during the walk are not in it', async () => {
    for (let i = 0; i < 3000; i++) put(`k${String(i).padStart(5, '0')}`, 'x'.repeat(100));
    const seen: string[] = [];
    let wrote = false;
    await backend.consistentScan(async (key) => {
      if (!wrote) {
        wrote = true;
        // a write right after the walk started, then a pause so the walk really runs alongside it
        put('zzz-late', 'late');
        await new Promise((r) => setTimeout(r, 10));
      }
      if (key[0] === Prefix.kv) seen.push(key.toString('hex'));
    });
    expect(seen.length).toBe(3000);
    expect(store.currentRev).toBe(3002);
  });

  test('a failed restore leaves nothing behind; a non-empty data dir is refused', async () => {
    put('a', '1');
    const file = path.join(dir, 'snap.db');
    await save(file);
    const truncated = path.join(dir, 'truncated.db');
    fs.writeFileSync(truncated, fs.readFileSync(file).subarray(0, fs.statSync(file).size - 100));
    const peer = 'http://127.0.0.1:2380';
    const base = {
      name: 'm1',
      initialCluster: new Map([['m1', [peer]]]),
      initialClusterToken: 'tok',
      initialAdvertisePeerUrls: [peer],
      skipHashCheck: true,
    };
    const before = fs.readdirSync(dir).sort();
    await expect(restoreSnapshot({ ...base, snapshotPath: truncated, dataDir: path.join(dir, 'new', 'deep', 'x.etcd') })).rejects.toThrow(/truncated/);
    expect(fs.readdirSync(dir).sort()).toEqual(before);

    const full = path.join(dir, 'full');
    fs.mkdirSync(full);
    fs.writeFileSync(path.join(full, 'f'), 'x');
    await expect(restoreSnapshot({ ...base, snapshotPath: file, dataDir: full })).rejects.toThrow(`data-dir "${full}" not empty or could not be read`);

    // an existing empty dir (a mount point, say) is filled in place
    const empty = path.join(dir, 'empty');
    fs.mkdirSync(empty);
    await expect(restoreSnapshot({ ...base, snapshotPath: truncated, dataDir: empty })).rejects.toThrow(/truncated/);
    expect(fs.readdirSync(empty)).toEqual([]);
    await restoreSnapshot({ ...base, snapshotPath: file, dataDir: empty, skipHashCheck: false });
    expect(fs.readdirSync(empty)).toEqual(['member']);

    await expect(restoreSnapshot({ ...base, name: 'other', snapshotPath: file, dataDir: path.join(dir, 'o') })).rejects.toThrow(
      'couldn\'t find local name "other" in the initial cluster configuration',
    );
  });

  test('the stored names the snapshot tools read are the ones the store writes', async () => {
    put('a', '1');
    const batch = new WriteBatch();
    const { done } = store.compact(2, batch);
    backend.write(batch, false);
    await done;
    const analyzer = new SnapshotAnalyzer();
    await backend.consistentScan((k, v) => analyzer.add(k, v));
    expect(analyzer.revision).toBe(store.currentRev);
    expect(analyzer.compactRevision).toBe(2);
    expect(backend.getSync(META_KEYS.currentRev)).toBeDefined();
    expect(backend.getSync(META_KEYS.scheduledCompactRev)).toBeDefined();
    expect(backend.getSync(META_KEYS.finishedCompactRev)).toBeDefined();
  });
});
