// Sanity checks for the reference etcd tools the other integration tests
// compare etcd-ts against (built by test/tools/build.sh / `make tools`).
import { etcdctl, NodeHandle, REFERENCE_ETCD_VERSION, runTool, startNode } from '../helpers';

jest.setTimeout(60_000);

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

describe('reference etcd tools', () => {
  let node: NodeHandle | undefined;

  afterAll(async () => {
    await node?.destroy();
  });

  test(`etcdctl and etcdutl report v${REFERENCE_ETCD_VERSION}`, async () => {
    const ctl = await etcdctl('127.0.0.1:1', ['version']);
    expect(ctl.code).toBe(0);
    expect(ctl.stdout).toContain(`etcdctl version: ${REFERENCE_ETCD_VERSION}`);
    const utl = await runTool('etcdutl', ['version']);
    expect(utl.code).toBe(0);
    expect(utl.stdout).toContain(`etcdutl version: ${REFERENCE_ETCD_VERSION}`);
  });

  test('reference etcd starts and serves put/get', async () => {
    node = await startNode({ kind: 'etcd', name: 'ref1' });
    expect(node.endpoint).toMatch(/^127\.0\.0\.1:\d+$/);

    const put = await etcdctl(node.endpoint, ['put', 'greeting', 'hello world']);
    expect(put).toMatchObject({ code: 0, stdout: 'OK\n' });

    const get = await etcdctl(node.endpoint, ['get', 'greeting']);
    expect(get).toMatchObject({ code: 0, stdout: 'greeting\nhello world\n' });

    const json = await etcdctl(node.endpoint, ['get', 'greeting', '-w', 'json']);
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.stdout) as {
      header: { revision: number };
      kvs: { key: string; value: string; version: number }[];
      count: number;
    };
    expect(parsed.count).toBe(1);
    expect(parsed.kvs).toHaveLength(1);
    expect(parsed.kvs[0]).toMatchObject({ key: b64('greeting'), value: b64('hello world'), version: 1 });
    expect(parsed.header.revision).toBeGreaterThanOrEqual(2);
  });

  test('data survives kill -9 and restart with the same data dir', async () => {
    if (!node) throw new Error('previous test did not start the node');
    const oldPid = node.pid;
    node.kill('SIGKILL');
    const exit = await node.waitExit(10_000);
    expect(exit.signal).toBe('SIGKILL');
    expect(node.running).toBe(false);

    await node.restart();
    expect(node.pid).not.toBe(oldPid);
    expect(node.running).toBe(true);

    const get = await etcdctl(node.endpoint, ['get', 'greeting', '--print-value-only']);
    expect(get).toMatchObject({ code: 0, stdout: 'hello world\n' });
  });
});
