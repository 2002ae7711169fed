// Talking to a managed cluster through the `etcd3` client: member list/add/promote/remove, per-member status and
// leader transfer, each with a deadline. One short-lived client per call and endpoint, without the library's
// retries: a membership change that timed out must not be sent a second time behind the reconciler's back
// (the reconciler observes the world again and decides).
//
// IDs: etcd3 gives and takes uint64 IDs as decimal strings; the operator (and etcdctl) speaks hex.
import { Etcd3, type IOptions, type IStatusResponse } from 'etcd3';
import type { EtcdView, ObservedMember, ObservedMemberStatus } from '../controllers/plan';

export interface Endpoint {
  /** The pod (member) name this endpoint belongs to. */
  name: string;
  url: string;
}

export const toHex = (decimal: string | number): string => BigInt(decimal).toString(16);
export const toDecimal = (hex: string): string => BigInt(`0x${hex}`).toString(10);

/** Member operations the reconciler needs; an interface so that tests can fake a cluster. */
export interface MemberOps {
  view(endpoints: Endpoint[]): Promise<EtcdView | 'unreachable'>;
  /** Adds a learner; returns its ID (hex). */
  addLearner(endpoints: Endpoint[], peerURL: string): Promise<string>;
  promote(endpoints: Endpoint[], id: string): Promise<void>;
  remove(endpoints: Endpoint[], id: string): Promise<void>;
  /** Asks the leader (its endpoint) to hand leadership to member `to` (hex). */
  moveLeader(leader: Endpoint, to: string): Promise<void>;
  close(): void;
}

/** A policy that runs the call once: the etcd3 client's own retries and circuit breakers are off. */
const once = {
  execute: <T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T, signal?: AbortSignal) =>
    Promise.resolve().then(() => fn({ signal: signal ?? new AbortController().signal })),
  onSuccess: () => ({ dispose: () => undefined }),
  onFailure: () => ({ dispose: () => undefined }),
} as unknown as NonNullable<NonNullable<IOptions['faultHandling']>['global']>;

export interface EtcdMemberOpsOptions {
  /** Deadline of each call, ms. */
  timeoutMs?: number;
}

export class EtcdMemberOps implements MemberOps {
  private readonly timeoutMs: number;

  constructor(options: EtcdMemberOpsOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? 5000;
  }

  private async withClient<T>(url: string, fn: (client: Etcd3, deadline: Date) => Promise<T>): Promise<T> {
    const client = new Etcd3({
      hosts: [url],
      dialTimeout: this.timeoutMs,
      faultHandling: { global: once, host: () => once },
    });
    try {
      return await withTimeout(fn(client, new Date(Date.now() + this.timeoutMs)), this.timeoutMs + 500, url);
    } finally {
      client.close();
    }
  }

  /** Tries the endpoints in turn until one answers. */
  private async anyEndpoint<T>(endpoints: Endpoint[], fn: (client: Etcd3, deadline: Date) => Promise<T>): Promise<T> {
    let last: unknown = new Error('no member endpoint to ask');
    for (const e of endpoints) {
      try {
        return await this.withClient(e.url, fn);
      } catch (err) {
        last = err;
        if (!isUnreachable(err)) throw err;
      }
    }
    throw last;
  }

  async view(endpoints: Endpoint[]): Promise<EtcdView | 'unreachable'> {
    const statuses = await Promise.all(
      endpoints.map(async (e) => {
        try {
          return await this.withClient(e.url, (client, deadline) => client.maintenance.status({ deadline }));
        } catch {
          return undefined;
        }
      }),
    );
    const answered = statuses.filter((s): s is IStatusResponse => s !== undefined);
    if (answered.length === 0) return 'unreachable';
    // Ask a member that knows the leader first: its member list is the committed one.
    const order = endpoints
      .map((e, i) => ({ e, s: statuses[i] }))
      .filter((x) => x.s !== undefined)
      .sort((a, b) => Number(b.s!.header.member_id === b.s!.leader) - Number(a.s!.header.member_id === a.s!.leader));
    let members: ObservedMember[] | undefined;
    let clusterId: string | undefined;
    for (const { e } of order) {
      try {
        const list = await this.withClient(e.url, (client, deadline) => client.cluster.memberList({ linearizable: true }, { deadline }));
        clusterId = toHex(list.header.cluster_id);
        members = list.members.map((m) => ({ id: toHex(m.ID), name: m.name ?? '', peerURLs: m.peerURLs ?? [], isLearner: !!m.isLearner }));
        break;
      } catch {
        // try the next one
      }
    }
    if (!members) return 'unreachable';
    const status: Record<string, ObservedMemberStatus> = {};
    for (const s of answered) {
      status[toHex(s.header.member_id)] = {
        reachable: true,
        leaderId: s.leader && s.leader !== '0' ? toHex(s.leader) : undefined,
        raftIndex: Number(s.raftIndex),
        appliedIndex: s.raftAppliedIndex !== undefined ? Number(s.raftAppliedIndex) : undefined,
        version: s.version,
        errors: s.errors ?? [],
      };
    }
    return { clusterId, members, status };
  }

  async addLearner(endpoints: Endpoint[], peerURL: string): Promise<string> {
    const res = await this.anyEndpoint(endpoints, (client, deadline) => client.cluster.memberAdd({ peerURLs: [peerURL], isLearner: true }, { deadline }));
    return toHex(res.member.ID);
  }

  async promote(endpoints: Endpoint[], id: string): Promise<void> {
    await this.anyEndpoint(endpoints, (client, deadline) => client.cluster.memberPromote({ ID: toDecimal(id) }, { deadline }));
  }

  async remove(endpoints: Endpoint[], id: string): Promise<void> {
    await this.anyEndpoint(endpoints, (client, deadline) => client.cluster.memberRemove({ ID: toDecimal(id) }, { deadline }));
  }

  async moveLeader(leader: Endpoint, to: string): Promise<void> {
    await this.withClient(leader.url, (client, deadline) => client.maintenance.moveLeader({ targetID: toDecimal(to) }, { deadline }));
  }

  close(): void {
    // Clients are per call; nothing is kept open.
  }
}

/** Errors after which another endpoint may answer (as opposed to the cluster refusing the request). */
export function isUnreachable(err: unknown): boolean {
  const name = (err as { name?: string } | undefined)?.name ?? '';
  const message = String((err as { message?: string } | undefined)?.message ?? err);
  return (
    /Unavailable|DeadlineExceeded|Timeout|ClientRuntime|Cancelled/i.test(name) ||
    /UNAVAILABLE|DEADLINE_EXCEEDED|ECONNREFUSED|EHOSTUNREACH|ENOTFOUND|timed out|No connection established|connect/i.test(message)
  );
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
