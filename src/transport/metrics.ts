// Peer network metrics under etcd's names, labels and buckets (etcd_network_*), registered on the shared
// registry so /metrics shows them next to the server's. Label values are member ids in lowercase hex
// without padding, as etcd prints them.
import * as client from 'prom-client';
import { registry } from '../metrics';

const buckets = (start: number, count: number) => client.exponentialBuckets(start, 2, count);

export const peerMetrics = {
  activePeers: new client.Gauge({ name: 'etcd_network_active_peers', help: 'The current number of active peer connections.', labelNames: ['Local', 'Remote'], registers: [registry] }),
  disconnectedPeers: new client.Counter({ name: 'etcd_network_disconnected_peers_total', help: 'The total number of disconnected peers.', labelNames: ['Local', 'Remote'], registers: [registry] }),
  sentBytes: new client.Counter({ name: 'etcd_network_peer_sent_bytes_total', help: 'The total number of bytes sent to peers.', labelNames: ['To'], registers: [registry] }),
  receivedBytes: new client.Counter({ name: 'etcd_network_peer_received_bytes_total', help: 'The total number of bytes received from peers.', labelNames: ['From'], registers: [registry] }),
  sentFailures: new client.Counter({ name: 'etcd_network_peer_sent_failures_total', help: 'The total number of send failures from peers.', labelNames: ['To'], registers: [registry] }),
  receivedFailures: new client.Counter({ name: 'etcd_network_peer_received_failures_total', help: 'The total number of receive failures from peers.', labelNames: ['From'], registers: [registry] }),
  roundTripTime: new client.Histogram({ name: 'etcd_network_peer_round_trip_time_seconds', help: 'Round-Trip-Time histogram between peers', labelNames: ['To'], buckets: buckets(0.0001, 16), registers: [registry] }),

  snapshotSendSuccess: new client.Counter({ name: 'etcd_network_snapshot_send_success', help: 'Total number of successful snapshot sends', labelNames: ['To'], registers: [registry] }),
  snapshotSendFailures: new client.Counter({ name: 'etcd_network_snapshot_send_failures', help: 'Total number of snapshot send failures', labelNames: ['To'], registers: [registry] }),
  snapshotSendInflights: new client.Gauge({ name: 'etcd_network_snapshot_send_inflights_total', help: 'Total number of inflight snapshot sends', labelNames: ['To'], registers: [registry] }),
  snapshotSendSeconds: new client.Histogram({ name: 'etcd_network_snapshot_send_total_duration_seconds', help: 'Total latency distributions of v3 snapshot sends', labelNames: ['To'], buckets: buckets(0.1, 10), registers: [registry] }),

  snapshotReceiveSuccess: new client.Counter({ name: 'etcd_network_snapshot_receive_success', help: 'Total number of successful snapshot receives', labelNames: ['From'], registers: [registry] }),
  snapshotReceiveFailures: new client.Counter({ name: 'etcd_network_snapshot_receive_failures', help: 'Total number of snapshot receive failures', labelNames: ['From'], registers: [registry] }),
  snapshotReceiveInflights: new client.Gauge({ name: 'etcd_network_snapshot_receive_inflights_total', help: 'Total number of inflight snapshot receives', labelNames: ['From'], registers: [registry] }),
  snapshotReceiveSeconds: new client.Histogram({ name: 'etcd_network_snapshot_receive_total_duration_seconds', help: 'Total latency distributions of v3 snapshot receives', labelNames: ['From'], buckets: buckets(0.1, 10), registers: [registry] }),
};

/** A member id as etcd prints it (types.ID.String()): lowercase hex, no padding. */
export function idLabel(id: bigint): string {
  return id.toString(16);
}
