// Data dirs etcd-ts must not silently replace: an etcd member's data dir is refused before anything is
// written to it, with a message that says what to do.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { etcdTsBin, removeDir, run, tmpDataDir } from '../helpers';

test('an etcd (bbolt) data dir is refused, untouched', async () => {
  const base = tmpDataDir('etcd-ts-etcddir-');
  try {
    const dataDir = path.join(base, 'etcd.etcd');
    fs.mkdirSync(path.join(dataDir, 'member', 'snap'), { recursive: true });
    fs.mkdirSync(path.join(dataDir, 'member', 'wal'), { recursive: true });
    fs.writeFileSync(path.join(dataDir, 'member', 'snap', 'db'), 'not really bbolt');
    const before = fs.readdirSync(path.join(dataDir, 'member')).sort();
    const res = await run(process.execPath, [etcdTsBin(), `--data-dir=${dataDir}`, '--listen-client-urls=http://127.0.0.1:0', '--advertise-client-urls=http://127.0.0.1:0'], { timeoutMs: 15_000 });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/holds an etcd member \(member\/snap\/db\), which etcd-ts cannot open/);
    expect(fs.readdirSync(path.join(dataDir, 'member')).sort()).toEqual(before);
    expect(fs.readdirSync(path.join(dataDir, 'member', 'wal'))).toEqual([]);
  } finally {
    removeDir(base);
  }
});
