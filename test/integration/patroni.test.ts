// Patroni + PostgreSQL high availability on a 3-member cluster, as our users run it (reference
// material §1, §3, §4): Patroni 4 (etcd3 DCS, i.e. the JSON gateway) with two PostgreSQL members
// elects one primary and a streaming replica; SIGKILL of the primary's Patroni and postmaster
// promotes the replica once the leader key's lease expires, with the committed row on the new
// primary; the old node rejoins as a replica; a sampler checks every ~200 ms that no two members
// ever act as primaries. The same failover runs with one cluster member SIGKILLed, and Patroni runs
// against the production runbook setup (client TLS with client-cert-auth, auth with a patroni role
// limited to /service/).
//
// The cluster kind is etcd-ts; ETCD_TS_PATRONI_KIND=etcd runs the same tests against reference etcd.
import * as fs from 'fs';
import * as https from 'https';
import * as path from 'path';
import { NodeHandle, NodeKind, etcdctl, freePort, httpGet, startCluster, startNode, tmpDataDir, removeDir } from '../helpers';
import { makeCa, makeCert } from '../helpers/certs';
import { PatroniCluster, PatroniMember, RoleSampler, patroniTools, shareWithRunUser } from '../helpers/patroni';

const KIND: NodeKind = process.env.ETCD_TS_PATRONI_KIND === 'etcd' ? 'etcd' : 'etcd-ts';
// Leader key TTL, HA loop and retry timeout (Patroni's rule: loop_wait + 2 * retry_timeout <= ttl;
// its etcd3 DCS raises a TTL below 20 s to 20 s).
const TTL = 20;
const LOOP_WAIT = 1;
const RETRY_TIMEOUT = 5;

jest.setTimeout(150_000);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

beforeAll(() => {
  // Fails (rather than skips) when `make tools` has not installed Patroni and PostgreSQL.
  patroniTools();
});

function secs(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

/** The member that /metrics reports as the Raft leader (etcd_server_is_leader 1). */
async function etcdLeader(nodes: NodeHandle[]): Promise<NodeHandle> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    for (const n of nodes.filter((x) => x.running)) {
      const m = await httpGet(`${n.clientUrl}/metrics`, 2_000).catch(() => undefined);
      if (m && /^etcd_server_is_leader 1$/m.test(m.body)) return n;
    }
    if (Date.now() > deadline) throw new Error('no cluster member reports etcd_server_is_leader 1');
    await sleep(200);
  }
}

/** Waits (bounded) until `m` is a running replica according to Patroni and to pg_is_in_recovery(). */
async function waitReplica(m: PatroniMember, timeoutMs: number, pg: PatroniCluster): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await m.status();
    if (s?.queried && s.state === 'running' && s.role === 'replica' && (await m.inRecovery()) === true) return;
    if (Date.now() > deadline) throw new Error(`${m.name} is not a running replica after ${timeoutMs} ms (last: ${JSON.stringify(s)})\n${pg.logTails()}`);
    await sleep(250);
  }
}

/** Waits (bounded) until `sql` on `m` returns `expected`. */
async function waitSql(m: PatroniMember, sql: string, expected: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      last = await m.sql(sql, 3_000);
      if (last === expected) return;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${m.name}: ${sql} gave ${JSON.stringify(last)}, not ${JSON.stringify(expected)}, after ${timeoutMs} ms`);
    await sleep(200);
  }
}

interface FailoverResult {
  electionMs: number;
  failoverMs: number;
}

/**
 * The failover scenario on a running cluster: elect, stream, write, SIGKILL the primary's Patroni
 * and postmaster, promotion, the row on the new primary, the old node back as a replica; `midway`
 * runs after the replica streams and before the kill (test 2 kills a cluster member there).
 */
async function failoverScenario(pg: PatroniCluster, label: string, midway?: (primary: PatroniMember, replica: PatroniMember) => Promise<void>): Promise<FailoverResult> {
  const sampler = new RoleSampler(pg.members, 200).start();
  try {
    const startedAt = pg.startAll();
    const first = await pg.waitPrimary(90_000);
    const electionMs = first.at - startedAt;
    const primary = first.member;
    const replica = pg.members.find((m) => m !== primary) as PatroniMember;
    console.log(`[${KIND}] ${label}: time to first primary (${primary.name}) ${secs(electionMs)}`);
    await pg.waitStreaming(primary, replica, 60_000);

    await primary.sql("CREATE TABLE failover_check (id int PRIMARY KEY, note text); INSERT INTO failover_check VALUES (1, 'before failover')");
    // Asynchronous replication: the row is committed on the replica before the primary dies.
    await waitSql(replica, 'SELECT note FROM failover_check WHERE id = 1', 'before failover', 15_000);

    if (midway) await midway(primary, replica);

    const killedAt = await primary.kill9();
    const promoted = await pg.waitPrimary(TTL * 1000 + 30_000, [primary.name]);
    const failoverMs = promoted.at - killedAt;
    console.log(`[${KIND}] ${label}: failover ${primary.name} -> ${promoted.member.name}: ${secs(failoverMs)} from SIGKILL to the new primary (ttl ${TTL} s, loop_wait ${LOOP_WAIT} s)`);
    expect(promoted.member.name).toBe(replica.name);
    // The lock is a lease Patroni renews every loop: it must outlive the kill by about the TTL (an
    // early expiry means leases expire too soon) and then be taken within a loop or two.
    expect(failoverMs).toBeGreaterThanOrEqual((TTL - 2 * LOOP_WAIT - 1) * 1000);
    expect(failoverMs).toBeLessThanOrEqual((TTL + 2 * LOOP_WAIT) * 1000 + 4_000);

    const newPrimary = promoted.member;
    expect(await newPrimary.inRecovery()).toBe(false);
    expect(await newPrimary.sql('SELECT note FROM failover_check WHERE id = 1')).toBe('before failover');
    await newPrimary.sql("INSERT INTO failover_check VALUES (2, 'after failover')");

    // The old node comes back (crash recovery, maybe pg_rewind) as a replica of the new primary.
    const restartedAt = Date.now();
    primary.start();
    await waitReplica(primary, 90_000, pg);
    await pg.waitStreaming(newPrimary, primary, 60_000);
    await waitSql(primary, 'SELECT note FROM failover_check WHERE id = 2', 'after failover', 15_000);
    console.log(`[${KIND}] ${label}: ${primary.name} back as a streaming replica ${secs(Date.now() - restartedAt)} after its restart`);
    expect(await pg.primaries()).toEqual([newPrimary.name]);

    await sampler.stop();
    const split = sampler.splitBrain();
    if (split.length > 0) console.log(`role timeline:\n${sampler.timeline()}`);
    expect(split.map((s) => RoleSampler.describe(s))).toEqual([]);
    // The sampler really watched both phases: each member was seen as the primary.
    expect(sampler.samples.length).toBeGreaterThan(50);
    for (const m of pg.members) expect(sampler.samples.some((s) => s.primaries.includes(m.name))).toBe(true);
    return { electionMs, failoverMs };
  } finally {
    await sampler.stop();
  }
}

test(`[${KIND}] 3-member cluster: one primary, a streaming replica, failover after SIGKILL of the primary, the old node rejoins; never two primaries`, async () => {
  const nodes = await startCluster({ kind: KIND, size: 3 });
  let pg: PatroniCluster | undefined;
  try {
    pg = await PatroniCluster.create({ etcd: { hosts: nodes.map((n) => n.endpoint) }, ttl: TTL, loopWait: LOOP_WAIT, retryTimeout: RETRY_TIMEOUT });
    await failoverScenario(pg, 'failover');
    // Patroni's keys live under /service/<scope>/ (reference material §1).
    const keys = (await etcdctl(nodes[0].endpoint, ['get', `/service/${pg.scope}/`, '--prefix', '--keys-only'])).stdout.split('\n').filter(Boolean);
    for (const k of ['leader', 'config', 'initialize', 'members/pg1', 'members/pg2']) expect(keys).toContain(`/service/${pg.scope}/${k}`);
  } finally {
    await pg?.destroy();
    await Promise.all(nodes.map((n) => n.destroy()));
  }
});

test(`[${KIND}] the same failover with the cluster's Raft leader SIGKILLed first: 2 of 3 members keep Patroni going`, async () => {
  const nodes = await startCluster({ kind: KIND, size: 3 });
  let pg: PatroniCluster | undefined;
  try {
    pg = await PatroniCluster.create({ etcd: { hosts: nodes.map((n) => n.endpoint) }, ttl: TTL, loopWait: LOOP_WAIT, retryTimeout: RETRY_TIMEOUT });
    const cluster = pg;
    await failoverScenario(pg, 'failover with 2 of 3 members', async (primary, replica) => {
      const leader = await etcdLeader(nodes);
      leader.kill('SIGKILL');
      await leader.waitExit(10_000);
      const killedAt = Date.now();
      const survivors = nodes.filter((n) => n !== leader);
      const next = await etcdLeader(survivors);
      console.log(`[${KIND}] failover with 2 of 3 members: SIGKILLed the Raft leader ${leader.name}; ${next.name} leads after ${secs(Date.now() - killedAt)}`);
      // Patroni rides it out: within retry_timeout it reaches a surviving member, keeps its lock,
      // and the primary and the streaming replica stay as they were.
      await sleep((RETRY_TIMEOUT + 2 * LOOP_WAIT) * 1000);
      expect(await cluster.primaries()).toEqual([primary.name]);
      await cluster.waitStreaming(primary, replica, 10_000);
      await primary.sql("INSERT INTO failover_check VALUES (3, 'with 2 of 3')");
      await waitSql(replica, 'SELECT note FROM failover_check WHERE id = 3', 'with 2 of 3', 15_000);
    });
  } finally {
    await pg?.destroy();
    await Promise.all(nodes.map((n) => n.destroy()));
  }
});

// ---------------------------------------------------------------------------------- runbook (§4)

function httpsRequest(port: number, method: 'GET' | 'POST', urlPath: string, ca: string, client: { cert: string; key: string }, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: urlPath,
        // As curl and Patroni send them. etcd ignores the TLS common name of gateway requests only
        // when an Accept header is present (it becomes the grpcgateway-accept metadata).
        headers: { accept: 'application/json', 'content-type': 'application/json' },
        ca: fs.readFileSync(ca), cert: fs.readFileSync(client.cert), key: fs.readFileSync(client.key), agent: false, timeout: 3_000 },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

async function httpsHealthy(port: number, ca: string, client: { cert: string; key: string }): Promise<boolean> {
  try {
    const res = await httpsRequest(port, 'GET', '/health', ca, client);
    return res.status === 200 && res.body.includes('"health":"true"');
  } catch {
    return false;
  }
}

test(`[${KIND}] production runbook: client TLS with client-cert-auth, auth with a patroni role on /service/, Patroni with hosts, username and certificates`, async () => {
  const dir = tmpDataDir('etcd-ts-patroni-tls-');
  fs.chmodSync(dir, 0o755);
  const pki = path.join(dir, 'pki');
  const ca = makeCa(pki, 'ca');
  const members = [1, 2, 3].map((i) => ({ name: `etcd-${i}`, cert: makeCert(ca, `etcd-${i}`, `etcd-${i}`, { san: `IP:127.0.0.1,DNS:etcd-${i},DNS:localhost` }) }));
  // A client certificate without a common name: it gets through client-cert-auth but names no user,
  // so requests are authenticated by user name and password only (as Patroni's and etcdctl's are).
  const client = makeCert(ca, 'client', '', { subject: '/O=patroni-clients' });
  const rootCert = makeCert(ca, 'root-client', 'root');
  // Patroni (the postgres user when we are root) reads the CA and its client pair.
  shareWithRunUser(pki);
  const ports = await Promise.all(Array.from({ length: 6 }, () => freePort()));
  const initialCluster = members.map((m, i) => `${m.name}=https://127.0.0.1:${ports[2 * i + 1]}`).join(',');
  const nodes: NodeHandle[] = [];
  let pg: PatroniCluster | undefined;
  const ROOT_PW = 'root-secret';
  const PATRONI_PW = 'patroni-secret';
  try {
    const startedAt = Date.now();
    for (const [i, m] of members.entries()) {
      const clientUrl = `https://127.0.0.1:${ports[2 * i]}`;
      const peerUrl = `https://127.0.0.1:${ports[2 * i + 1]}`;
      nodes.push(
        await startNode({
          kind: KIND,
          name: m.name,
          clientPort: ports[2 * i],
          peerPort: ports[2 * i + 1],
          dataDir: path.join(dir, m.name, 'data'),
          initialCluster,
          waitReady: false,
          extraArgs: [
            `--listen-client-urls=${clientUrl}`,
            `--advertise-client-urls=${clientUrl}`,
            `--listen-peer-urls=${peerUrl}`,
            `--initial-advertise-peer-urls=${peerUrl}`,
            '--initial-cluster-token=patroni-etcd-cluster',
            '--initial-cluster-state=new',
            '--heartbeat-interval=250',
            '--election-timeout=2500',
            '--snapshot-count=10000',
            '--quota-backend-bytes=2147483648',
            '--auto-compaction-mode=periodic',
            '--auto-compaction-retention=1h',
            `--cert-file=${m.cert.cert}`,
            `--key-file=${m.cert.key}`,
            `--trusted-ca-file=${ca.cert}`,
            '--client-cert-auth',
            `--peer-cert-file=${m.cert.cert}`,
            `--peer-key-file=${m.cert.key}`,
            `--peer-trusted-ca-file=${ca.cert}`,
            '--peer-client-cert-auth',
          ],
        }),
      );
    }
    const deadline = Date.now() + 40_000;
    for (const n of nodes) {
      while (!(await httpsHealthy(n.clientPort, ca.cert, client))) {
        if (!n.running || Date.now() > deadline) throw new Error(`${n.name} not healthy over https:\n${n.logTail()}`);
        await sleep(200);
      }
    }
    console.log(`[${KIND}] runbook: TLS cluster healthy after ${secs(Date.now() - startedAt)}`);

    const eps = nodes.map((n) => `https://127.0.0.1:${n.clientPort}`);
    const tlsFlags = [`--cacert=${ca.cert}`, `--cert=${client.cert}`, `--key=${client.key}`, '--command-timeout=10s'];
    const ctl = async (args: string[], user?: string) => {
      const r = await etcdctl(eps, [...tlsFlags, ...(user ? [`--user=${user}`] : []), ...args]);
      if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')} failed: ${r.stderr}`);
      return r.stdout;
    };
    // RBAC after bootstrap, in the runbook's order.
    await ctl(['user', 'add', 'root', `--new-user-password=${ROOT_PW}`]);
    await ctl(['user', 'add', 'patroni', `--new-user-password=${PATRONI_PW}`]);
    await ctl(['role', 'add', 'patroni-role']);
    await ctl(['role', 'grant-permission', 'patroni-role', 'readwrite', '--prefix=true', '/service/']);
    await ctl(['user', 'grant-role', 'patroni', 'patroni-role']);
    await ctl(['user', 'grant-role', 'root', 'root']);
    await ctl(['auth', 'enable']);
    expect(await ctl(['auth', 'status'], `root:${ROOT_PW}`)).toMatch(/Authentication Status: true/);
    // The runbook's verification: patroni reads and writes /service/, nothing else.
    expect(await ctl(['put', '/service/test', 'ok'], `patroni:${PATRONI_PW}`)).toBe('OK\n');
    expect(await ctl(['get', '/service/test', '--print-value-only'], `patroni:${PATRONI_PW}`)).toBe('ok\n');
    await ctl(['del', '/service/test'], `patroni:${PATRONI_PW}`);
    const outside = await etcdctl(eps, [...tlsFlags, `--user=patroni:${PATRONI_PW}`, 'get', '/other']);
    expect(outside.code).not.toBe(0);
    expect(outside.stderr).toContain('permission denied');

    pg = await PatroniCluster.create({
      etcd: { hosts: nodes.map((n) => n.endpoint), protocol: 'https', cacert: ca.cert, cert: client.cert, key: client.key, username: 'patroni', password: PATRONI_PW },
      scope: 'runbook',
      namespace: '/service/',
      ttl: TTL,
      loopWait: LOOP_WAIT,
      retryTimeout: RETRY_TIMEOUT,
    });
    const patroniStart = pg.startAll();
    const { member: primary, at } = await pg.waitPrimary(90_000);
    console.log(`[${KIND}] runbook: time to first primary (${primary.name}) ${secs(at - patroniStart)}`);
    const replica = pg.members.find((m) => m !== primary) as PatroniMember;
    await pg.waitStreaming(primary, replica, 60_000);
    expect(await pg.primaries()).toEqual([primary.name]);

    // Patroni's keys, read as root: all under /service/runbook/, the leader key names the primary.
    const keys = (await ctl(['get', '', '--from-key', '--keys-only'], `root:${ROOT_PW}`)).split('\n').filter(Boolean);
    for (const k of ['leader', 'config', 'initialize', 'members/pg1', 'members/pg2']) expect(keys).toContain(`/service/runbook/${k}`);
    expect(keys.filter((k) => !k.startsWith('/service/runbook/'))).toEqual([]);
    expect(await ctl(['get', '/service/runbook/leader', '--print-value-only'], `root:${ROOT_PW}`)).toBe(`${primary.name}\n`);
    // Without a user name and password the cluster refuses, as etcd 3.6 does: over gRPC,
    // client-cert-auth makes the certificate's (empty) common name the user, who has no permission;
    // through the JSON gateway (Patroni's way in) a certificate never names the user, so a request
    // without a token has none ("user name is empty"), and a certificate that has a common name is
    // refused outright (which is why Patroni's client certificate has none).
    const anonymous = await etcdctl(eps, [...tlsFlags, 'get', '/', '--prefix']);
    const range = JSON.stringify({ key: Buffer.from('/').toString('base64'), range_end: Buffer.from('0').toString('base64') });
    const gateway = await httpsRequest(nodes[0].clientPort, 'POST', '/v3/kv/range', ca.cert, client, range);
    const gatewayCn = await httpsRequest(nodes[0].clientPort, 'POST', '/v3/kv/range', ca.cert, rootCert, range);
    expect({
      grpc: { failed: anonymous.code !== 0, error: /Error: (.*)/.exec(anonymous.stderr)?.[1] ?? anonymous.stdout },
      gateway: { status: gateway.status, body: gateway.body.replace(/, "/g, ',"') },
      gatewayWithCommonName: { status: gatewayCn.status, body: gatewayCn.body.trim() },
    }).toEqual({
      grpc: { failed: true, error: 'etcdserver: permission denied' },
      gateway: { status: 400, body: '{"code":3,"message":"etcdserver: user name is empty"}' },
      gatewayWithCommonName: { status: 400, body: 'CommonName of client sending a request against gateway will be ignored and not used as expected' },
    });
  } finally {
    await pg?.destroy();
    await Promise.all(nodes.map((n) => n.destroy()));
    removeDir(dir);
  }
});
