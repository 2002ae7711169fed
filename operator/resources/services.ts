// The cluster's two Services.
// - Peer (headless, C-peer): gives each member its stable DNS name C-i.C-peer.N.svc, used in --initial-cluster
//   and the advertised URLs. publishNotReadyAddresses, because members must find each other before any of them
//   is ready: readiness needs a quorum, and a quorum needs the members to talk.
// - Client (C-client): the endpoint applications use; only ready members (those serving with a quorum) get
//   traffic.
import type { V1Service, V1ServicePort } from '@kubernetes/client-node';
import type { EtcdCluster } from '../api';
import {
  CLIENT_PORT,
  CLIENT_PORT_NAME,
  PEER_PORT,
  PEER_PORT_NAME,
  clientServiceName,
  ownedMetadata,
  peerServiceName,
  selectorLabels,
} from './names';

const clientPort: V1ServicePort = { name: CLIENT_PORT_NAME, port: CLIENT_PORT, targetPort: CLIENT_PORT_NAME, protocol: 'TCP' };
const peerPort: V1ServicePort = { name: PEER_PORT_NAME, port: PEER_PORT, targetPort: PEER_PORT_NAME, protocol: 'TCP' };

export function buildPeerService(c: EtcdCluster): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: ownedMetadata(c, peerServiceName(c)),
    spec: {
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector: selectorLabels(c),
      ports: [{ ...clientPort }, { ...peerPort }],
    },
  };
}

export function buildClientService(c: EtcdCluster): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: ownedMetadata(c, clientServiceName(c)),
    spec: {
      type: 'ClusterIP',
      selector: selectorLabels(c),
      ports: [{ ...clientPort }],
    },
  };
}
