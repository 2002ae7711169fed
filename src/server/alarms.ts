// Cluster alarms (NOSPACE, CORRUPT): raised and cleared through the log so every member agrees, and
// stored with the state. While NOSPACE is raised the store is "capped": writes that add data are refused
// with etcd's "database space exceeded", while reads, deletes and compaction still work.
import { Backend, Prefix, WriteBatch, prefixed } from '../storage';
import { AlarmAction, AlarmMember, AlarmRequest, AlarmType } from '../pb';

const PREFIX = 'alarm/';

export class AlarmStore {
  private readonly active = new Map<string, AlarmMember>();

  static async load(backend: Backend): Promise<AlarmStore> {
    const store = new AlarmStore();
    await backend.scan(prefixed(Prefix.meta, PREFIX), prefixed(Prefix.meta, 'alarm0'), (_k, v) => {
      const m = JSON.parse(v.toString('utf8')) as AlarmMember;
      store.active.set(AlarmStore.key(m), m);
    });
    return store;
  }

  private static key(m: AlarmMember): string {
    return `${BigInt(m.memberID).toString(16)}/${m.alarm}`;
  }

  list(type: number = AlarmType.NONE): AlarmMember[] {
    return [...this.active.values()].filter((a) => type === AlarmType.NONE || a.alarm === type);
  }

  has(type: number): boolean {
    return this.list(type).length > 0;
  }

  /** Applies a committed AlarmRequest; returns the alarms of the response, as etcd's apply does. */
  apply(r: AlarmRequest, batch: WriteBatch): AlarmMember[] {
    const m: AlarmMember = { memberID: String(r.memberID), alarm: r.alarm };
    const key = AlarmStore.key(m);
    switch (r.action) {
      case AlarmAction.GET:
        return this.list(r.alarm);
      case AlarmAction.ACTIVATE: {
        if (r.alarm === AlarmType.NONE) return [];
        if (!this.active.has(key)) {
          this.active.set(key, m);
          batch.put(prefixed(Prefix.meta, PREFIX + key), Buffer.from(JSON.stringify(m)));
        }
        return [m];
      }
      case AlarmAction.DEACTIVATE: {
        const existing = this.active.get(key);
        if (!existing) return [];
        this.active.delete(key);
        batch.del(prefixed(Prefix.meta, PREFIX + key));
        return [existing];
      }
      default:
        return [];
    }
  }
}
