// The peer transport: raft message batches, snapshot streaming and member-to-member calls on the peer
// port. See transport.ts for the design.
export { CodecError, decodeMessages, encodeMessages } from './codec';
export { idLabel, peerMetrics } from './metrics';
export {
  CLUSTER_VERSION,
  DEFAULT_TUNING,
  PEER_SERVER_OPTIONS,
  PeerHttpError,
  PeerTransport,
  fetchClusterMembers,
  parsePeerUrl,
} from './transport';
export type { PeerTransportOptions, PeerTransportTuning } from './transport';
