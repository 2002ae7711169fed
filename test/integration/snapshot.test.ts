// Snapshots end to end: `etcdctl snapshot save` from a running etcd-ts (with deletes and a compaction
// behind it, and writers running during the save), `etcd-ts snapshot status` in etcdutl's shapes,
// `etcd-ts snapshot restore` into a new data dir, and a member booted from it with the same keys,
// values, revisions and compaction point. Damaged files and occupied data dirs are refused with one line
// and nothing written.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Etcd3 } from 'etcd3';
import { NodeHandle, RunResult, etcdTsBin, etcdctl, freePort, removeDir, run, startNode, tmpDataDir } from '../helpers';

interface JsonKv {
  key: string;
  value?: string;
  create_revision: number;
  mod_revision: number;
  version: number;
  lease?: number;
}
interface JsonGet {
  header: { revision: number; member_id: number; cluster_id: number };
  kvs?: JsonKv[];
  count?: number;
}

let node: NodeHandle;
let work: string;
const restored: NodeHandle[] = [];

function etcdTs(args: string[], timeoutMs = 60_000): Promise<RunResult> {
  return run(process.execPath, [etcdTsBin(), ...args], { timeoutMs, cwd: work });
}

async function getAll(endpoint: string, extra: string[] = []): Promise<JsonGet> {
  // etcdctl's JSON prints int64 fields as numbers; keys/values are base64
  const res = await etcdctl(endpoint, ['get', '', '--prefix', '-w', 'json', ...extra]);
  expect(res.stderr).toBe('');
  expect(res.code).toBe(0);
  return JSON.parse(res.stdout.replace(/"(member_id|cluster_id)":(\d+)/g, '"$1":"$2"')) as JsonGet;
}

function kvsOf(r: JsonGet): string[] {
  return (r.kvs ?? []).map((kv) => {
    const value = Buffer.from(kv.value ?? '', 'base64');
    const shown = value.length > 40 ? `sha1:${crypto.createHash('sha1').update(value).digest('hex')}` : value.toString();
    const lease = kv.lease ? ` lease ${kv.lease.toString(16)}` : '';
    return `${Buffer.from(kv.key, 'base64').toString()}=${shown}@${kv.create_revision}/${kv.mod_revision}/${kv.version}${lease}`;
  });
}

function listing(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}

async function restoreAndBoot(file: string, dataDir: string): Promise<NodeHandle> {
  const peerPort = await freePort();
  const peer = `http://127.0.0.1:${peerPort}`;
  const res = await etcdTs([
    'snapshot',
    'restore',
    file,
    '--data-dir',
    dataDir,
    '--name',
    'node1',
    `--initial-cluster=node1=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    '--initial-cluster-token=restored',
  ]);
  expect(res.stdout).toBe('');
  expect(res.code).toBe(0);
  expect(res.stderr).toMatch(/"msg":"restored snapshot"/);
  const n = await startNode({ kind: 'etcd-ts', name: 'node1', dataDir, peerPort });
  restored.push(n);
  return n;
}

beforeAll(async () => {
  work = tmpDataDir('etcd-ts-snapshot-');
  node = await startNode({ kind: 'etcd-ts' });
});

afterAll(async () => {
  await node?.destroy();
  for (const n of restored) await n.destroy();
  if (work) removeDir(work);
});

describe('snapshot save / status / restore', () => {
  const file = () => path.join(work, 'snap.db');
  let saved: JsonGet;
  let compactedAt = 0;
  let leaseId = '';

  test('etcdctl snapshot save from a running etcd-ts; the file verifies; status like etcdutl', async () => {
    const client = new Etcd3({ hosts: node.clientUrl });
    try {
      await client.put('a').value('1');
      await client.put('b').value('2');
      await client.put('a').value('3');
      await client.delete().key('b');
      for (let i = 0; i < 40; i++) await client.put(`big/${i}`).value(crypto.randomBytes(40_000).toString('base64'));
      await client.delete().prefix('big/1');
      const mid = await getAll(node.endpoint);
      compactedAt = mid.header.revision - 5;
      const compact = await etcdctl(node.endpoint, ['compact', String(compactedAt), '--physical']);
      expect(compact.stdout).toBe(`compacted revision ${compactedAt}\n`);
      await client.put('after/compaction').value('x');
      await client.put('a').value('4');
      const grant = await etcdctl(node.endpoint, ['lease', 'grant', '600']);
      leaseId = /lease ([0-9a-f]+) granted/.exec(grant.stdout)?.[1] ?? '';
      expect(leaseId).not.toBe('');
      expect((await etcdctl(node.endpoint, ['put', 'leased', 'v', `--lease=${leaseId}`])).code).toBe(0);
    } finally {
      client.close();
    }
    saved = await getAll(node.endpoint);

    const res = await etcdctl(node.endpoint, ['snapshot', 'save', file()], { timeoutMs: 60_000 });
    expect(res.code).toBe(0);
    expect(res.stdout).toBe(`Snapshot saved at ${file()}\nServer version 3.6.0\n`);
    const size = fs.statSync(file()).size;
    expect(size % 512).toBe(32);
    // > 1 MB of data: many 32 KiB messages, remaining_bytes counting down, then the hash
    expect(size).toBeGreaterThan(1_000_000);
    // the last 32 bytes are the SHA-256 of everything before them
    const bytes = fs.readFileSync(file());
    expect(crypto.createHash('sha256').update(bytes.subarray(0, size - 32)).digest().equals(bytes.subarray(size - 32))).toBe(true);

    const json = await etcdTs(['snapshot', 'status', file(), '-w', 'json']);
    expect(json.code).toBe(0);
    const status = JSON.parse(json.stdout) as { hash: number; revision: number; totalKey: number; totalSize: number; version: string };
    expect(status).toEqual({
      hash: expect.any(Number),
      revision: saved.header.revision,
      totalKey: saved.count,
      totalSize: size - 32,
      version: '3.6.0',
    });
    const simple = await etcdTs(['snapshot', 'status', file()]);
    expect(simple.stdout).toMatch(new RegExp(`^${status.hash.toString(16)}, ${status.revision}, ${status.totalKey}, [0-9.]+ [kM]B, 3\\.6\\.0\\n$`));
    const table = await etcdTs(['snapshot', 'status', '-w', 'table', file()]);
    expect(table.stdout.split('\n')[1]).toMatch(/^\| +HASH +\| REVISION \| TOTAL KEYS \| TOTAL SIZE \| VERSION \|$/);
  });

  test('restore into a new data dir; a member boots from it with the same keys, revisions and compaction', async () => {
    const dataDir = path.join(work, 'restored', 'node1.etcd');
    const n = await restoreAndBoot(file(), dataDir);
    const got = await getAll(n.endpoint);
    expect(kvsOf(got)).toEqual(kvsOf(saved));
    expect(got.header.revision).toBe(saved.header.revision);
    // a new member of a new cluster
    expect(got.header.member_id).not.toBe(saved.header.member_id);
    expect(got.header.cluster_id).not.toBe(saved.header.cluster_id);
    // history kept above the compaction point, refused below it
    const old = await getAll(n.endpoint, [`--rev=${compactedAt}`]);
    expect(kvsOf(old)).toEqual(kvsOf(await getAll(node.endpoint, [`--rev=${compactedAt}`])));
    const below = await etcdctl(n.endpoint, ['get', 'a', `--rev=${compactedAt - 1}`]);
    expect(below.code).toBe(1);
    expect(below.stderr).toMatch(/Error: etcdserver: mvcc: required revision has been compacted/);
    // it carries on from there, and after a restart too
    const put = await etcdctl(n.endpoint, ['put', 'new', 'v', '-w', 'json']);
    expect(JSON.parse(put.stdout).header.revision).toBe(saved.header.revision + 1);
    const members = await etcdctl(n.endpoint, ['member', 'list']);
    expect(members.stdout).toMatch(/, started, node1, http:\/\/127\.0\.0\.1:\d+, http:\/\/127\.0\.0\.1:\d+, false\n$/);
    // leases come along (etcd keeps them too), with their keys
    const ttl = await etcdctl(n.endpoint, ['lease', 'timetolive', leaseId, '--keys']);
    expect(ttl.stdout).toMatch(new RegExp(`^lease ${leaseId} granted with TTL\\(600s\\), remaining\\(\\d+s\\), attached keys\\(\\[leased\\]\\)\\n$`));
    await n.restart();
    const again = await getAll(n.endpoint);
    expect(again.header.revision).toBe(saved.header.revision + 1);
    expect(kvsOf(again)).toContain(`new=v@${saved.header.revision + 1}/${saved.header.revision + 1}/1`);
  });

  test('a snapshot taken while writes continue is the state at its revision', async () => {
    const client = new Etcd3({ hosts: node.clientUrl });
    let stop = false;
    let written = 0;
    const writer = async (w: number) => {
      for (let i = 0; !stop; i++) {
        await client.put(`load/${w}/${i % 50}`).value(`${i}`);
        written++;
      }
    };
    const writers = Array.from({ length: 4 }, (_, w) => writer(w));
    const during = path.join(work, 'during.db');
    try {
      while (written < 100) await new Promise((r) => setTimeout(r, 10));
      const res = await etcdctl(node.endpoint, ['snapshot', 'save', during], { timeoutMs: 60_000 });
      expect(res.code).toBe(0);
      const before = written;
      while (written < before + 100) await new Promise((r) => setTimeout(r, 10));
    } finally {
      stop = true;
      await Promise.all(writers);
      client.close();
    }
    const status = JSON.parse((await etcdTs(['snapshot', 'status', during, '-w', 'json'])).stdout) as { revision: number };
    const atRev = await getAll(node.endpoint, [`--rev=${status.revision}`]);
    const n = await restoreAndBoot(during, path.join(work, 'during.etcd'));
    const got = await getAll(n.endpoint);
    expect(got.header.revision).toBe(status.revision);
    expect(kvsOf(got)).toEqual(kvsOf(atRev));
  });

  test('corrupt and truncated files are refused with one line, and nothing is written', async () => {
    const good = fs.readFileSync(file());
    const corrupt = path.join(work, 'corrupt.db');
    const flipped = Buffer.from(good);
    flipped[Math.floor(good.length / 2)] ^= 0xff;
    fs.writeFileSync(corrupt, flipped);
    const truncated = path.join(work, 'truncated.db');
    fs.writeFileSync(truncated, good.subarray(0, Math.floor(good.length / 2)));
    const target = path.join(work, 'never', 'x.etcd');
    const before = listing(work);

    const cases: [string[], RegExp][] = [
      [[corrupt], /^Error: snapshot sha256 mismatch: file says [0-9a-f]{64}, content is [0-9a-f]{64}\n$/],
      [[corrupt, '--skip-hash-check'], /^Error: (corrupt snapshot|snapshot truncated): /],
      [[truncated], /^Error: snapshot missing hash but --skip-hash-check=false\n$/],
      [[truncated, '--skip-hash-check'], /^Error: snapshot truncated: /],
    ];
    for (const [args, message] of cases) {
      const res = await etcdTs(['snapshot', 'restore', ...args, '--data-dir', target]);
      expect(res.code).toBe(1);
      const errors = res.stderr.split('\n').filter((l) => l.startsWith('Error:'));
      expect(errors).toHaveLength(1);
      expect(`${errors[0]}\n`).toMatch(message);
      expect(listing(work)).toEqual(before);
    }
    const status = await etcdTs(['snapshot', 'status', corrupt]);
    expect(status.code).toBe(1);
    expect(status.stderr).toMatch(/^Error: snapshot sha256 mismatch/);
    expect(status.stdout).toBe('');
  });

  test('restore into an existing, non-empty data dir is refused and leaves it alone', async () => {
    const occupied = path.join(work, 'occupied');
    fs.mkdirSync(occupied);
    fs.writeFileSync(path.join(occupied, 'keep-me'), 'x');
    const res = await etcdTs(['snapshot', 'restore', file(), '--data-dir', occupied]);
    expect(res.code).toBe(1);
    expect(res.stderr).toBe(`Error: data-dir "${occupied}" not empty or could not be read\n`);
    expect(listing(occupied)).toEqual(['keep-me']);
    // and a data dir a member already uses, too
    const inUse = await etcdTs(['snapshot', 'restore', file(), '--data-dir', node.dataDir]);
    expect(inUse.code).toBe(1);
    expect(inUse.stderr).toMatch(/not empty or could not be read/);
  });

  test('argument errors as etcdutl reports them', async () => {
    const none = await etcdTs(['snapshot', 'status']);
    expect(none).toMatchObject({ code: 128, stderr: 'Error: snapshot status requires exactly one argument\n' });
    const pb = await etcdTs(['snapshot', 'status', file(), '-w', 'protobuf']);
    expect(pb).toMatchObject({ code: 4, stderr: 'Error: protobuf not supported as output format\n' });
    const missing = await etcdTs(['snapshot', 'status', path.join(work, 'nope.db')]);
    expect(missing).toMatchObject({ code: 1, stderr: `Error: stat ${path.join(work, 'nope.db')}: no such file or directory\n` });
    const bump = await etcdTs(['snapshot', 'restore', file(), '--bump-revision=5', '--data-dir', path.join(work, 'b')]);
    expect(bump).toMatchObject({ code: 128, stderr: 'Error: --mark-compacted required if --revision-bump > 0\n' });
    const name = await etcdTs(['snapshot', 'restore', file(), '--name=other', '--data-dir', path.join(work, 'c')]);
    expect(name).toMatchObject({ code: 1, stderr: 'Error: couldn\'t find local name "other" in the initial cluster configuration\n' });
    expect(fs.existsSync(path.join(work, 'b'))).toBe(false);
    expect(fs.existsSync(path.join(work, 'c'))).toBe(false);
  });
});
