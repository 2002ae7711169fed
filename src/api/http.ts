// The HTTP/1.1 side of the client port: /health, /livez, /readyz, /version, /metrics (as etcd serves them),
// and the JSON gateway's /v3/... paths (gateway.ts).
import * as http from 'node:http';
import { EtcdServer, ETCD_API_VERSION, CLUSTER_VERSION, STORAGE_VERSION } from '../server';
import { registry } from '../metrics';
import { AlarmType } from '../pb';

const ALARM_NAMES: Record<number, string> = { [AlarmType.NOSPACE]: 'NOSPACE', [AlarmType.CORRUPT]: 'CORRUPT' };
import { Logger } from '../util/logger';

interface Check {
  name: string;
  run: () => Promise<void> | void;
}

export function createHttpHandler(server: EtcdServer, log: Logger, gateway?: (req: http.IncomingMessage, res: http.ServerResponse, path: string) => boolean): http.RequestListener {
  // The checks /livez and /readyz run, in etcd's order and names.
  const readChecks = (): Check[] => [
    {
      name: 'data_corruption',
      run: () => {
        if (server.alarms.has(AlarmType.CORRUPT)) throw new Error('alarm activated: CORRUPT');
      },
    },
    { name: 'serializable_read', run: async () => void (await server.range(healthRange(true))) },
    { name: 'linearizable_read', run: async () => void (await server.range(healthRange(false))) },
    {
      name: 'non_learner',
      run: () => {
        if (server.memberList().find((m) => m.id === server.memberId)?.isLearner) throw new Error('member is a learner');
      },
    },
  ];

  const probe = async (res: http.ServerResponse, url: URL, checks: Check[]) => {
    const exclude = new Set(url.searchParams.getAll('exclude'));
    const verbose = url.searchParams.has('verbose');
    const lines: string[] = [];
    let failed = false;
    for (const c of checks) {
      if (exclude.has(c.name)) continue;
      try {
        await c.run();
        lines.push(`[+]${c.name} ok`);
      } catch (err) {
        failed = true;
        lines.push(`[-]${c.name} failed: reason withheld`);
        log.warn({ check: c.name, err }, 'health check failed');
      }
    }
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    if (failed) {
      res.statusCode = 503;
      res.end(`${lines.join('\n')}\nhealth check failed\n`);
    } else {
      res.statusCode = 200;
      res.end(verbose ? `${lines.join('\n')}\nok\n` : 'ok\n');
    }
  };

  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    // etcd answers every client-port HTTP request with these CORS headers.
    res.setHeader('Access-Control-Allow-Headers', 'accept, content-type, authorization');
    res.setHeader('Access-Control-Allow-Methods', 'POST, GET, OPTIONS, PUT, DELETE');
    res.setHeader('Access-Control-Allow-Origin', '*');
    const p = url.pathname;
    if (gateway && gateway(req, res, p)) return;
    const run = async () => {
      if (p === '/health') {
        // etcd's order: a raised alarm (unless ?exclude=<ALARM>) makes the member unhealthy before any read.
        const excluded = new Set(url.searchParams.getAll('exclude'));
        let health = { health: 'true', reason: '' };
        const alarm = server.alarms.list().find((a) => !excluded.has(ALARM_NAMES[a.alarm] ?? 'UNKNOWN'));
        if (alarm) {
          health = { health: 'false', reason: `ALARM ${ALARM_NAMES[alarm.alarm] ?? 'UNKNOWN'}` };
          log.warn({ alarm: ALARM_NAMES[alarm.alarm] }, 'serving /health false due to an alarm');
        } else if (url.searchParams.get('serializable') !== 'true' && server.leaderId() === 0n) {
          health = { health: 'false', reason: 'RAFT NO LEADER' };
          log.warn({}, 'serving /health false; no leader');
        } else {
          try {
            await server.range(healthRange(url.searchParams.get('serializable') === 'true'));
          } catch (err) {
            health = { health: 'false', reason: `RANGE ERROR:${err instanceof Error ? err.message : String(err)}` };
          }
        }
        res.statusCode = health.health === 'true' ? 200 : 503;
        res.setHeader('Content-Type', 'text/plain; charset=utf-8');
        res.end(JSON.stringify(health));
      } else if (p === '/livez' || p.startsWith('/livez/')) {
        await probe(res, url, pick(readChecks().filter((c) => c.name === 'serializable_read'), p, '/livez'));
      } else if (p === '/readyz' || p.startsWith('/readyz/')) {
        await probe(res, url, pick(readChecks(), p, '/readyz'));
      } else if (p === '/version') {
        res.setHeader('Content-Type', 'application/json');
        res.end(JSON.stringify({ etcdserver: ETCD_API_VERSION, etcdcluster: CLUSTER_VERSION, storage: STORAGE_VERSION }));
      } else if (p === '/metrics') {
        res.setHeader('Content-Type', registry.contentType);
        res.end(await registry.metrics());
      } else {
        notFound(res);
      }
    };
    run().catch((err: unknown) => {
      const status = (err as { status?: number }).status;
      if (status === 404) return notFound(res);
      log.error({ err, path: p }, 'http handler failed');
      if (!res.headersSent) res.statusCode = 500;
      res.end();
    });
  };
}

function notFound(res: http.ServerResponse): void {
  res.statusCode = 404;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.end('404 page not found\n');
}

/** /readyz/<check> runs only that check; an unknown name is a 404 like etcd's. */
function pick(checks: Check[], p: string, base: string): Check[] {
  if (p === base) return checks;
  const name = p.slice(base.length + 1);
  const found = checks.filter((c) => c.name === name);
  if (found.length === 0) throw Object.assign(new Error(`unknown check ${name}`), { status: 404 });
  return found;
}

function healthRange(serializable: boolean) {
  return {
    key: Buffer.from('health'),
    range_end: Buffer.alloc(0),
    limit: 0,
    revision: 0,
    sort_order: 0,
    sort_target: 0,
    serializable,
    keys_only: false,
    count_only: true,
    min_mod_revision: 0,
    max_mod_revision: 0,
    min_create_revision: 0,
    max_create_revision: 0,
  };
}
