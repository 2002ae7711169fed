// Bad input against etcd-ts, each case also sent to a reference etcd to assert the same answer:
// oversized requests, too many txn ops, malformed protobuf and unknown methods on raw gRPC calls,
// unknown HTTP paths, and invalid command-line flags. After every rejected request the server must
// keep serving and nothing may have been written.
import * as fs from 'fs';
import * as path from 'path';
import * as grpc from '@grpc/grpc-js';
import { etcdctl, etcdTsBin, freePort, httpGet, NodeHandle, removeDir, run, startNode, tmpDataDir, toolPath } from '../helpers';
import { expectSameOutput, identify, NodeIdentity, runPair } from '../helpers/compare';

jest.setTimeout(60_000);

let refNode: NodeHandle | undefined;
let tsNode: NodeHandle | undefined;
let ref: NodeIdentity;
let ts: NodeIdentity;

beforeAll(async () => {
  const started = await Promise.allSettled([startNode({ kind: 'etcd', name: 'bad' }), startNode({ kind: 'etcd-ts', name: 'bad' })]);
  [refNode, tsNode] = started.map((s) => (s.status === 'fulfilled' ? s.value : undefined));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  [ref, ts] = await Promise.all([identify(refNode as NodeHandle, 'etcd'), identify(tsNode as NodeHandle, 'etcd-ts')]);
  // Something to read back, so "nothing was written" is checked against a non-empty store.
  for (const node of [refNode, tsNode] as NodeHandle[]) {
    const put = await etcdctl(node.endpoint, ['put', 'present', 'yes']);
    if (put.code !== 0) throw new Error(`setup put failed on ${node.kind}: ${put.stderr}`);
  }
});

afterAll(async () => {
  await Promise.all([refNode, tsNode].map((n) => n?.destroy()));
});

// ---------------------------------------------------------------------------
// Helpers

const MiB = 1024 * 1024;
/** etcd's default --max-request-bytes. */
const MAX_REQUEST_BYTES = 1.5 * MiB;
/** etcd's gRPC receive limit: --max-request-bytes plus 512 KiB for the envelope. */
const GRPC_RECV_LIMIT = MAX_REQUEST_BYTES + 512 * 1024;

function varint(n: number): Buffer {
  const bytes: number[] = [];
  while (n > 127) {
    bytes.push((n % 128) | 128);
    n = Math.floor(n / 128);
  }
  bytes.push(n);
  return Buffer.from(bytes);
}

/** A length-delimited protobuf field. */
function bytesField(fieldNo: number, value: Buffer): Buffer {
  return Buffer.concat([varint((fieldNo << 3) | 2), varint(value.length), value]);
}

/** An etcdserverpb.PutRequest {key, value}, encoded by hand. */
function putRequest(key: string, value: Buffer): Buffer {
  return Buffer.concat([bytesField(1, Buffer.from(key)), bytesField(2, value)]);
}

interface RawResult {
  code: number;
  details: string;
  /** Raw response bytes when the call succeeded. */
  response?: Buffer;
}

/** One unary call with caller-supplied request bytes (no protobuf encoding on our side). */
function rawUnary(node: NodeHandle, method: string, payload: Buffer, timeoutMs = 10_000): Promise<RawResult> {
  const client = new grpc.Client(node.endpoint, grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': -1,
    'grpc.max_receive_message_length': -1,
  });
  return new Promise<RawResult>((resolve) => {
    client.makeUnaryRequest<Buffer, Buffer>(
      method,
      (b) => b,
      (b) => b,
      payload,
      new grpc.Metadata(),
      { deadline: Date.now() + timeoutMs },
      (err, response) => {
        client.close();
        if (err) resolve({ code: err.code, details: err.details });
        else resolve({ code: grpc.status.OK, details: '', response });
      },
    );
  });
}

const codeName = (code: number) => `${grpc.status[code] ?? '?'} (${code})`;

async function revision(node: NodeHandle): Promise<number> {
  const res = await etcdctl(node.endpoint, ['get', 'present', '-w', 'json']);
  if (res.code !== 0) throw new Error(`${node.kind}: get failed (server not serving?): ${res.stderr}`);
  const m = /"revision":(\d+)/.exec(res.stdout);
  if (!m) throw new Error(`no revision in ${res.stdout}`);
  return Number(m[1]);
}

/** Runs `fn` and asserts both servers still serve reads and their revisions did not move. */
async function expectNothingWritten(fn: () => Promise<void>): Promise<void> {
  const before = await Promise.all([revision(ref.node), revision(ts.node)]);
  await fn();
  const after = await Promise.all([revision(ref.node), revision(ts.node)]);
  expect({ etcd: after[0], etcdTs: after[1] }).toEqual({ etcd: before[0], etcdTs: before[1] });
  const get = await etcdctl(ts.node.endpoint, ['get', 'present', '--print-value-only']);
  expect({ code: get.code, stdout: get.stdout }).toEqual({ code: 0, stdout: 'yes\n' });
}

/** Raw call on both servers; the gRPC status codes must match. Returns both results. */
async function rawBoth(method: string, payload: Buffer): Promise<{ etcd: RawResult; etcdTs: RawResult }> {
  const [etcd, etcdTs] = await Promise.all([rawUnary(ref.node, method, payload), rawUnary(ts.node, method, payload)]);
  return { etcd, etcdTs };
}

function expectSameCode(r: { etcd: RawResult; etcdTs: RawResult }, expected: grpc.status): void {
  expect({ etcd: codeName(r.etcd.code), etcdTs: codeName(r.etcdTs.code) }).toEqual({ etcd: codeName(expected), etcdTs: codeName(expected) });
}

function expectSameDetails(r: { etcd: RawResult; etcdTs: RawResult }): void {
  expect({ etcdTs: r.etcdTs.details }).toEqual({ etcdTs: r.etcd.details });
}

// ---------------------------------------------------------------------------
describe('request size limits', () => {
  test('etcdctl put with a value just under 1.5 MiB succeeds', async () => {
    const input = 'a'.repeat(MAX_REQUEST_BYTES - 1024);
    const res = await runPair(ref, ts, ['put', 'big/under'], { input, timeoutMs: 20_000 });
    expectSameOutput(res);
    expect(res.ts.stdout).toBe('OK\n');
  });

  test('etcdctl put with a value of 1.5 MiB + 1 byte -> etcdserver: request is too large', async () => {
    await expectNothingWritten(async () => {
      const input = 'a'.repeat(MAX_REQUEST_BYTES + 1);
      const res = await runPair(ref, ts, ['put', 'big/over'], { input, timeoutMs: 20_000 });
      expectSameOutput(res);
      expect(res.ts.code).toBe(1);
      expect(res.ts.stderr).toContain('Error: etcdserver: request is too large\n');
    });
  });

  test('raw Put between 1.5 MiB and the 2 MiB gRPC limit -> INVALID_ARGUMENT request is too large', async () => {
    await expectNothingWritten(async () => {
      const r = await rawBoth('/etcdserverpb.KV/Put', putRequest('big/raw', Buffer.alloc(Math.floor(1.9 * MiB), 97)));
      expectSameCode(r, grpc.status.INVALID_ARGUMENT);
      expectSameDetails(r);
      expect(r.etcdTs.details).toBe('etcdserver: request is too large');
    });
  });

  test('raw Put over the 2 MiB gRPC receive limit -> RESOURCE_EXHAUSTED', async () => {
    await expectNothingWritten(async () => {
      const r = await rawBoth('/etcdserverpb.KV/Put', putRequest('big/raw', Buffer.alloc(GRPC_RECV_LIMIT, 97)));
      expectSameCode(r, grpc.status.RESOURCE_EXHAUSTED);
    });
  });

  // The wording of transport-level errors comes from the gRPC library (grpc-go for etcd, grpc-js for us);
  // clients act on the code. Each message still says what happened and gives the sizes.
  test('raw Put over the 2 MiB gRPC receive limit: the message names the sizes', async () => {
    const r = await rawBoth('/etcdserverpb.KV/Put', putRequest('big/raw', Buffer.alloc(GRPC_RECV_LIMIT, 97)));
    expectSameCode(r, grpc.status.RESOURCE_EXHAUSTED);
    expect(r.etcd.details).toMatch(/received message larger than max \(\d+ vs\. 2097152\)/);
    expect(r.etcdTs.details).toMatch(/Received message larger than max \(\d+ vs 2097152\)/);
  });

  test('etcdctl put over 2 MiB is refused by the client before sending', async () => {
    await expectNothingWritten(async () => {
      const input = 'a'.repeat(GRPC_RECV_LIMIT + 1024);
      const res = await runPair(ref, ts, ['put', 'big/client'], { input, timeoutMs: 20_000 });
      expectSameOutput(res);
      expect(res.ts.code).not.toBe(0);
    });
  });
});

// ---------------------------------------------------------------------------
describe('txn limits', () => {
  const script = (ops: number) => ['', ...Array.from({ length: ops }, (_, i) => `put txn/k${i} v`), '', '', ''].join('\n');

  test('txn with 129 ops -> etcdserver: too many operations in txn request', async () => {
    await expectNothingWritten(async () => {
      const res = await runPair(ref, ts, ['txn'], { input: script(129) });
      expectSameOutput(res);
      expect(res.ts.code).toBe(1);
      expect(res.ts.stderr).toContain('Error: etcdserver: too many operations in txn request\n');
    });
  });

  test('txn with 128 ops succeeds', async () => {
    const res = await runPair(ref, ts, ['txn'], { input: script(128) });
    expectSameOutput(res);
    expect(res.ts.stdout.startsWith('SUCCESS\n')).toBe(true);
  });
});

// ---------------------------------------------------------------------------
describe('malformed and unknown gRPC calls', () => {
  const malformed: [string, Buffer][] = [
    ['illegal wire type', Buffer.from([0xff, 0xff, 0xff, 0xff, 0x07])],
    ['truncated length-delimited field', Buffer.from([0x0a, 0x10, 0x61, 0x62])],
    ['wrong wire type for a known field', Buffer.from([0x0b, 0x01])],
  ];

  for (const [label, payload] of malformed) {
    test(`Put with garbage bytes (${label}) -> INTERNAL, server keeps serving, nothing written`, async () => {
      await expectNothingWritten(async () => {
        const r = await rawBoth('/etcdserverpb.KV/Put', payload);
        expectSameCode(r, grpc.status.INTERNAL);
        expect(r.etcdTs.details).not.toBe('');
      });
    });
  }

  test('Put with garbage bytes: the message says the request could not be decoded', async () => {
    const r = await rawBoth('/etcdserverpb.KV/Put', malformed[0][1]);
    expect(r.etcd.details).toMatch(/^grpc: error unmarshalling request: /);
    expect(r.etcdTs.details).toMatch(/^Error deserializing request/);
  });

  test('a valid Put after the garbage ones is applied exactly once', async () => {
    const before = await Promise.all([revision(ref.node), revision(ts.node)]);
    const r = await rawBoth('/etcdserverpb.KV/Put', putRequest('after-garbage', Buffer.from('ok')));
    expectSameCode(r, grpc.status.OK);
    const after = await Promise.all([revision(ref.node), revision(ts.node)]);
    expect({ etcd: after[0] - before[0], etcdTs: after[1] - before[1] }).toEqual({ etcd: 1, etcdTs: 1 });
    const res = await runPair(ref, ts, ['get', 'after-garbage', '--print-value-only']);
    expectSameOutput(res);
    expect(res.ts.stdout).toBe('ok\n');
  });

  test('unknown method /etcdserverpb.KV/Nope -> UNIMPLEMENTED', async () => {
    await expectNothingWritten(async () => {
      expectSameCode(await rawBoth('/etcdserverpb.KV/Nope', Buffer.alloc(0)), grpc.status.UNIMPLEMENTED);
    });
  });

  test('unknown method /etcdserverpb.KV/Nope: the message names the method', async () => {
    const r = await rawBoth('/etcdserverpb.KV/Nope', Buffer.alloc(0));
    expectSameCode(r, grpc.status.UNIMPLEMENTED);
    expect(r.etcd.details).toBe('unknown method Nope for service etcdserverpb.KV');
    expect(r.etcdTs.details).toBe('The server does not implement the method /etcdserverpb.KV/Nope');
  });

  test('unknown service /etcdserverpb.Nope/Put -> UNIMPLEMENTED naming it', async () => {
    const r = await rawBoth('/etcdserverpb.Nope/Put', Buffer.alloc(0));
    expectSameCode(r, grpc.status.UNIMPLEMENTED);
    expect(r.etcd.details).toBe('unknown service etcdserverpb.Nope');
    expect(r.etcdTs.details).toBe('The server does not implement the method /etcdserverpb.Nope/Put');
  });

  test('Put with an empty request (no key) -> INVALID_ARGUMENT key is not provided', async () => {
    await expectNothingWritten(async () => {
      const r = await rawBoth('/etcdserverpb.KV/Put', Buffer.alloc(0));
      expectSameCode(r, grpc.status.INVALID_ARGUMENT);
      expectSameDetails(r);
    });
  });
});

// ---------------------------------------------------------------------------
describe('HTTP', () => {
  test('GET of an unknown path -> 404 like etcd', async () => {
    const [e, t] = await Promise.all([httpGet(`${ref.node.clientUrl}/no/such/path`), httpGet(`${ts.node.clientUrl}/no/such/path`)]);
    expect(t.status).toBe(404);
    expect({ status: t.status, body: t.body, contentType: t.headers['content-type'] }).toEqual({
      status: e.status,
      body: e.body,
      contentType: e.headers['content-type'],
    });
    // and still serving
    const health = await httpGet(`${ts.node.clientUrl}/health`);
    expect(health.status).toBe(200);
  });
});

// ---------------------------------------------------------------------------
describe('bad command-line flags', () => {
  const cases: [string, string][] = [
    ['--bogus', 'bogus'],
    ['--heartbeat-interval=abc', 'heartbeat-interval'],
    ['--election-timeout=100', 'election-timeout'],
    ['--initial-cluster-state=maybe', 'initial-cluster-state'],
    ['--listen-client-urls=not-a-url', 'listen-client-urls'],
  ];

  /** Starts a binary with valid loopback flags plus `bad`; the data dir path is fresh and must stay absent. */
  async function startWithBadFlag(kind: 'etcd' | 'etcd-ts', bad: string) {
    const base = tmpDataDir(`etcd-ts-badflag-${kind}-`);
    try {
      const dataDir = path.join(base, 'data.etcd');
      const client = `http://127.0.0.1:${await freePort()}`;
      const peer = `http://127.0.0.1:${await freePort()}`;
      const flags = [
        '--name=bad',
        `--data-dir=${dataDir}`,
        ...(bad.startsWith('--listen-client-urls=') ? [] : [`--listen-client-urls=${client}`]),
        `--advertise-client-urls=${client}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=bad=${peer}`,
        bad,
      ];
      const res =
        kind === 'etcd'
          ? await run(toolPath('etcd'), flags, { cwd: base, timeoutMs: 10_000 }, ['ETCD_'])
          : await run(process.execPath, [etcdTsBin(), ...flags], { cwd: base, timeoutMs: 10_000 }, ['ETCD_']);
      return { ...res, dataDirCreated: fs.existsSync(dataDir), baseEntries: fs.readdirSync(base) };
    } finally {
      removeDir(base);
    }
  }

  for (const [flag, name] of cases) {
    test(`etcd-ts ${flag} -> non-zero exit, one-line error naming the flag, no data dir`, async () => {
      const res = await startWithBadFlag('etcd-ts', flag);
      expect(res.code).not.toBe(0);
      expect(res.code).not.toBeNull();
      const lines = res.stderr.replace(/\n$/, '').split('\n');
      expect({ lines: lines.length, stderr: res.stderr }).toEqual({ lines: 1, stderr: expect.stringContaining(name) });
      expect({ dataDirCreated: res.dataDirCreated, baseEntries: res.baseEntries }).toEqual({ dataDirCreated: false, baseEntries: [] });
    });

    test(`${flag}: exit code matches etcd`, async () => {
      const [e, t] = await Promise.all([startWithBadFlag('etcd', flag), startWithBadFlag('etcd-ts', flag)]);
      expect({ exitCode: t.code, dataDirCreated: t.dataDirCreated }).toEqual({ exitCode: e.code, dataDirCreated: e.dataDirCreated });
    });
  }
});
