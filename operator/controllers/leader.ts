// Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection: the holder renews the Lease
// every retry period; another candidate takes it only once it has not been renewed for leaseDuration (as seen
// by the candidate's own clock since it last saw the Lease change); updates carry the resourceVersion, so two
// candidates racing for an expired Lease cannot both win. A leader that cannot renew within renewDeadline stops
// leading. Releasing on shutdown empties holderIdentity, so a successor need not wait for expiry.
import { type KubeClient, type KubeObject, RESOURCES, isConflict, isNotFound } from '../k8s';

export interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number;
}

export interface LeaseObject extends KubeObject {
  spec?: LeaseSpec;
}

/** What a candidate remembers of the Lease: its last-seen content and when (by the local clock) it changed. */
export interface Observation {
  record: string;
  observedAt: number;
}

export type Decision = { action: 'acquire' | 'renew'; spec: LeaseSpec } | { action: 'wait'; holder: string };

const microTime = (ms: number): string => new Date(ms).toISOString().replace('Z', '000Z');

/** Pure: what a candidate does with the Lease it just read. */
export function decide(lease: LeaseSpec | undefined, identity: string, now: number, durationSeconds: number, observed: Observation | undefined): Decision {
  const holder = lease?.holderIdentity ?? '';
  const fresh: LeaseSpec = {
    holderIdentity: identity,
    leaseDurationSeconds: durationSeconds,
    acquireTime: microTime(now),
    renewTime: microTime(now),
    leaseTransitions: (lease?.leaseTransitions ?? 0) + (holder && holder !== identity ? 1 : 0),
  };
  if (!lease || holder === '') return { action: 'acquire', spec: fresh };
  if (holder === identity) return { action: 'renew', spec: { ...lease, renewTime: microTime(now), leaseDurationSeconds: durationSeconds } };
  const duration = (lease.leaseDurationSeconds ?? durationSeconds) * 1000;
  const record = JSON.stringify(lease);
  const since = observed && observed.record === record ? observed.observedAt : now;
  if (now - since >= duration) return { action: 'acquire', spec: fresh };
  return { action: 'wait', holder };
}

export interface LeaderElectorOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
  log?: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void };
}

export class LeaderElector {
  private observation: Observation | undefined;
  private leading = false;
  private stopped = false;
  private lastRenew = 0;
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private inFlight: Promise<boolean> | undefined;

  constructor(
    private readonly kube: KubeClient,
    private readonly o: LeaderElectorOptions,
  ) {}

  isLeader(): boolean {
    return this.leading;
  }

  /** Runs until stop(). */
  async run(): Promise<void> {
    const retry = this.o.retryPeriodMs ?? 2000;
    const renewDeadline = this.o.renewDeadlineMs ?? 10_000;
    while (!this.stopped) {
      let ok = false;
      try {
        this.inFlight = this.tryAcquireOrRenew();
        ok = await this.inFlight;
      } catch (err) {
        this.o.log?.warn({ err: String(err) }, 'leader election: lease update failed');
      }
      if (ok) {
        this.lastRenew = Date.now();
        if (!this.leading && !this.stopped) {
          this.leading = true;
          this.o.log?.info({ lease: `${this.o.namespace}/${this.o.name}`, identity: this.o.identity }, 'became leader');
          this.o.onStartedLeading();
        }
      } else if (this.leading && Date.now() - this.lastRenew > renewDeadline) {
        this.leading = false;
        this.o.log?.warn({ lease: `${this.o.namespace}/${this.o.name}` }, 'lost leadership');
        this.o.onStoppedLeading();
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.timer = setTimeout(resolve, retry);
      });
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.o;
    const duration = this.o.leaseDurationSeconds ?? 15;
    let lease: LeaseObject | undefined;
    try {
      lease = await this.kube.get<LeaseObject>(RESOURCES.leases, namespace, name);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    const now = Date.now();
    const d = decide(lease?.spec, identity, now, duration, this.observation);
    if (lease?.spec) {
      const record = JSON.stringify(lease.spec);
      if (!this.observation || this.observation.record !== record) this.observation = { record, observedAt: now };
    }
    if (d.action === 'wait') return false;
    try {
      if (!lease) {
        await this.kube.create(RESOURCES.leases, namespace, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace }, spec: d.spec });
      } else {
        await this.kube.replace(RESOURCES.leases, namespace, name, { ...lease, spec: d.spec } as LeaseObject);
      }
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  /** Stops campaigning; a leader releases the Lease so that a successor takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.wake?.();
    // A renewal in flight would overwrite the release: let it finish first.
    await this.inFlight?.catch(() => false);
    if (!this.leading) return;
    this.leading = false;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const lease = await this.kube.get<LeaseObject>(RESOURCES.leases, this.o.namespace, this.o.name);
        if (lease.spec?.holderIdentity !== this.o.identity) return;
        await this.kube.replace(RESOURCES.leases, this.o.namespace, this.o.name, {
          ...lease,
          spec: { ...lease.spec, holderIdentity: null, acquireTime: null, renewTime: null, leaseDurationSeconds: 1 },
        } as LeaseObject);
        return;
      } catch (err) {
        if (isConflict(err)) continue;
        this.o.log?.warn({ err: String(err) }, 'could not release the lease');
        return;
      }
    }
  }
}
