// --auto-compaction-mode / --auto-compaction-retention on a running member: old revisions become
// unreadable ("compacted") on the schedule etcd uses, and the latest data is untouched.
import { NodeHandle, etcdctl, startNode } from '../helpers';

let node: NodeHandle;

afterEach(async () => {
  await node?.destroy();
});

async function firstReadableRevisionError(rev: number): Promise<string> {
  return (await etcdctl(node.endpoint, ['get', 'k', `--rev=${rev}`])).stderr;
}

test('periodic mode with a 2s retention compacts history older than the window', async () => {
  node = await startNode({ kind: 'etcd-ts', extraArgs: ['--auto-compaction-mode=periodic', '--auto-compaction-retention=2s'] });
  for (let i = 0; i < 5; i++) expect((await etcdctl(node.endpoint, ['put', 'k', `v${i}`])).code).toBe(0);
  expect(await firstReadableRevisionError(2)).toBe('');
  // The first compaction lands one retention after start, on the revision sampled at start; the
  // next ones follow every retention. Poll (bounded) until revision 2 is gone.
  const deadline = Date.now() + 15_000;
  let err = '';
  while (Date.now() < deadline) {
    await etcdctl(node.endpoint, ['put', 'k', 'tick']);
    err = await firstReadableRevisionError(2);
    if (err !== '') break;
    await new Promise((r) => setTimeout(r, 300));
  }
  expect(err).toMatch(/etcdserver: mvcc: required revision has been compacted/);
  const latest = await etcdctl(node.endpoint, ['get', 'k', '--print-value-only']);
  expect(latest.stdout).toBe('tick\n');
  expect(node.logTail()).toMatch(/auto-compaction/);
});

test('no compaction by default (retention 0)', async () => {
  node = await startNode({ kind: 'etcd-ts' });
  for (let i = 0; i < 3; i++) await etcdctl(node.endpoint, ['put', 'k', `v${i}`]);
  await new Promise((r) => setTimeout(r, 1500));
  expect(await firstReadableRevisionError(2)).toBe('');
});
