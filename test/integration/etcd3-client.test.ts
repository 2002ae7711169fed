// The `etcd3` npm client (a real, independent gRPC client) against a running etcd-ts node: CRUD, ranges,
// transactions, compaction, and the error classes the client maps from etcd's messages.
import { Etcd3, EtcdError, EtcdLeaseInvalidError, GRPCGenericError } from 'etcd3';
import { NodeHandle, startNode } from '../helpers';

let node: NodeHandle;
let client: Etcd3;

beforeAll(async () => {
  node = await startNode({ kind: 'etcd-ts' });
  client = new Etcd3({ hosts: node.clientUrl });
});

afterAll(async () => {
  client?.close();
  await node?.destroy();
});

test('put, get, overwrite and delete one key', async () => {
  await client.put('crud/a').value('1');
  expect(await client.get('crud/a').string()).toBe('1');
  await client.put('crud/a').value('2');
  const res = await client.get('crud/a').exec();
  expect(res.kvs[0].value.toString()).toBe('2');
  expect(res.kvs[0].version).toBe('2');
  expect(Number(res.kvs[0].mod_revision)).toBeGreaterThan(Number(res.kvs[0].create_revision));
  const del = await client.delete().key('crud/a').exec();
  expect(del.deleted).toBe('1');
  expect(await client.get('crud/a').string()).toBeNull();
});

test('prefix ranges, sorting, limits and counts', async () => {
  for (const k of ['c', 'a', 'b', 'd']) await client.put(`range/${k}`).value(k.toUpperCase());
  await client.put('rangeX').value('outside');
  expect(await client.getAll().prefix('range/').keys()).toEqual(['range/a', 'range/b', 'range/c', 'range/d']);
  expect(await client.getAll().prefix('range/').sort('Key', 'Descend').keys()).toEqual(['range/d', 'range/c', 'range/b', 'range/a']);
  // sort by create revision: c was written first
  expect(await client.getAll().prefix('range/').sort('Create', 'Ascend').keys()).toEqual(['range/c', 'range/a', 'range/b', 'range/d']);
  const limited = await client.getAll().prefix('range/').limit(2).exec();
  expect(limited.kvs.map((kv) => kv.key.toString())).toEqual(['range/a', 'range/b']);
  expect(limited.more).toBe(true);
  expect(limited.count).toBe('4');
  expect(await client.getAll().prefix('range/').count()).toBe(4);
  expect(await client.getAll().prefix('range/').strings()).toEqual({ 'range/a': 'A', 'range/b': 'B', 'range/c': 'C', 'range/d': 'D' });
  const deleted = await client.delete().prefix('range/').exec();
  expect(deleted.deleted).toBe('4');
  expect(await client.get('rangeX').string()).toBe('outside');
});

test('transactions: compare-and-swap on value, version and mod revision', async () => {
  await client.put('txn/k').value('v1');
  const ok = await client.if('txn/k', 'Value', '==', 'v1').then(client.put('txn/k').value('v2')).else(client.get('txn/k')).commit();
  expect(ok.succeeded).toBe(true);
  const no = await client.if('txn/k', 'Value', '==', 'v1').then(client.put('txn/k').value('v3')).else(client.get('txn/k')).commit();
  expect(no.succeeded).toBe(false);
  expect(no.responses[0].response_range?.kvs[0].value.toString()).toBe('v2');
  // create-if-absent, as kube-apiserver does it
  const create = await client.if('txn/new', 'Mod', '==', 0).then(client.put('txn/new').value('x')).commit();
  expect(create.succeeded).toBe(true);
  const again = await client.if('txn/new', 'Mod', '==', 0).then(client.put('txn/new').value('y')).commit();
  expect(again.succeeded).toBe(false);
  expect(await client.get('txn/new').string()).toBe('x');
  const ver = await client.if('txn/k', 'Version', '==', 2).then(client.delete().key('txn/k')).commit();
  expect(ver.succeeded).toBe(true);
  expect(await client.get('txn/k').string()).toBeNull();
});

test('a put naming an unknown lease fails with EtcdLeaseInvalidError and changes nothing', async () => {
  const before = await client.get('lease/k').exec();
  await expect(client.put('lease/k').value('v').lease('1234')).rejects.toBeInstanceOf(EtcdLeaseInvalidError);
  const after = await client.get('lease/k').exec();
  expect(after.kvs).toEqual([]);
  expect(after.header.revision).toBe(before.header.revision);
});

test('errors carry etcd messages: empty key, compacted and future revisions', async () => {
  await expect(client.put('').value('x')).rejects.toThrow('etcdserver: key is not provided');
  const put = await client.put('compact/k').value('1').exec();
  const rev = Number(put.header.revision);
  await client.put('compact/k').value('2');
  await expect(client.get('compact/k').revision(rev + 100).exec()).rejects.toThrow('etcdserver: mvcc: required revision is a future revision');
  await client.kv.compact({ revision: String(rev + 1), physical: true });
  const err = await client
    .get('compact/k')
    .revision(rev)
    .exec()
    .catch((e: unknown) => e);
  expect(err).toBeInstanceOf(Error);
  expect(err instanceof EtcdError || err instanceof GRPCGenericError).toBe(true);
  expect((err as Error).message).toContain('etcdserver: mvcc: required revision has been compacted');
  expect(await client.get('compact/k').string()).toBe('2');
});
