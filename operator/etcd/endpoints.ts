// Where the operator reaches each member's client port: through the member's stable DNS name (real
// clusters), or the pod's IP (test control planes without cluster DNS).
import type { EtcdCluster } from '../api';
import { CLIENT_PORT, memberClientURL } from '../resources';
import type { Endpoint } from './client';

export type EndpointMode = 'dns' | 'pod-ip';

export interface PodAddress {
  name: string;
  podIP?: string;
}

/** The endpoints of the given pods; in pod-ip mode a pod without an IP yet has none. */
export function memberEndpoints(c: EtcdCluster, pods: readonly PodAddress[], mode: EndpointMode): Endpoint[] {
  const out: Endpoint[] = [];
  for (const p of pods) {
    if (mode === 'dns') out.push({ name: p.name, url: memberClientURL(c, p.name) });
    else if (p.podIP) out.push({ name: p.name, url: `http://${p.podIP}:${CLIENT_PORT}` });
  }
  return out;
}
