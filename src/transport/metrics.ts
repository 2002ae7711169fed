// Peer network metrics under etcd's names, labels and buckets (etcd_network_*), registered on the shared
// registry so /metrics shows them next to the server's. Label values are member ids in lowercase hex
// without padding, as etcd prints them. HELP texts are our own words.
import * as client from 'prom-client';
import { registry } from '../metrics';

const buckets = (start: number, count: number) => client.exponentialBuckets(start, 2, count);

export const peerMetrics = {
  activePeers: new client.Gauge({ name: 'etcd_network_active_peers', help: 'Peer connections currently up, by local and remote member.', labelNames: ['Local', 'Remote'], registers: [registry] }),
  disconnectedPeers: new client.Counter({ name: 'etcd_network_disconnected_peers_total', help: 'Times a peer connection went down.', labelNames: ['Local', 'Remote'], registers: [registry] }),
  sentBytes: new client.Counter({ name: 'etcd_network_peer_sent_bytes_total', help: 'Bytes of raft messages and snapshots sent to a peer.', labelNames: ['To'], registers: [registry] }),
  receivedBytes: new client.Counter({ name: 'etcd_network_peer_received_bytes_total', help: 'Bytes of raft messages and snapshots received from a peer.', labelNames: ['From'], registers: [registry] }),
  sentFailures: new client.Counter({ name: 'etcd_network_peer_sent_failures_total', help: 'Messages to a peer that could not be sent (dropped or failed).', labelNames: ['To'], registers: [registry] }),
  receivedFailures: new client.Counter({ name: 'etcd_network_peer_received_failures_total', help: 'Peer messages or streams that failed while being received.', labelNames: ['From'], registers: [registry] }),
  roundTripTime: new client.Histogram({ name: 'etcd_network_peer_round_trip_time_seconds', help: 'Round trip time of a message batch posted to a peer (request to answer).', labelNames: ['To'], buckets: buckets(0.0001, 16), registers: [registry] }),

  snapshotSendSuccess: new client.Counter({ name: 'etcd_network_snapshot_send_success', help: 'Snapshots sent to a peer successfully.', labelNames: ['To'], registers: [registry] }),
  snapshotSendFailures: new client.Counter({ name: 'etcd_network_snapshot_send_failures', help: 'Snapshot sends to a peer that failed.', labelNames: ['To'], registers: [registry] }),
  snapshotSendInflights: new client.Gauge({ name: 'etcd_network_snapshot_send_inflights_total', help: 'Snapshot sends to a peer in progress.', labelNames: ['To'], registers: [registry] }),
  snapshotSendSeconds: new client.Histogram({ name: 'etcd_network_snapshot_send_total_duration_seconds', help: 'Time to send a snapshot to a peer.', labelNames: ['To'], buckets: buckets(0.1, 10), registers: [registry] }),

  snapshotReceiveSuccess: new client.Counter({ name: 'etcd_network_snapshot_receive_success', help: 'Snapshots received from a peer successfully.', labelNames: ['From'], registers: [registry] }),
  snapshotReceiveFailures: new client.Counter({ name: 'etcd_network_snapshot_receive_failures', help: 'Snapshot receives from a peer that failed.', labelNames: ['From'], registers: [registry] }),
  snapshotReceiveInflights: new client.Gauge({ name: 'etcd_network_snapshot_receive_inflights_total', help: 'Snapshot receives from a peer in progress.', labelNames: ['From'], registers: [registry] }),
  snapshotReceiveSeconds: new client.Histogram({ name: 'etcd_network_snapshot_receive_total_duration_seconds', help: 'Time to receive a snapshot from a peer.', labelNames: ['From'], buckets: buckets(0.1, 10), registers: [registry] }),
};

/** A member id as etcd prints it (types.ID.String()): lowercase hex, no padding. */
export function idLabel(id: bigint): string {
  return id.toString(16);
}
