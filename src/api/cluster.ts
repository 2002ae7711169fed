// etcdserverpb.Cluster: membership. Changes go through the Raft log (see EtcdServer.member*); etcd's
// cluster API headers carry no revision.
import { EtcdServer, Member, memberToPb } from '../server';
import { ApiDeps, ServiceModule } from './service';

interface ListResult {
  header: object;
  members: Member[];
}

function listResponse(server: EtcdServer, r: ListResult) {
  return { header: { ...r.header, revision: 0 }, members: r.members.map(memberToPb) };
}

export function clusterService({ server }: ApiDeps): ServiceModule {
  return {
    service: 'etcdserverpb.Cluster',
    unary: {
      MemberList: async (r: { linearizable?: boolean }) => {
        if (r.linearizable) await server.linearizableBarrier();
        return { header: { ...server.header(), revision: 0 }, members: server.memberList().map(memberToPb) };
      },
      MemberAdd: async (r: { peerURLs: string[]; isLearner: boolean }) => {
        const res = await server.memberAdd(r.peerURLs ?? [], r.isLearner === true);
        return { ...listResponse(server, res), member: memberToPb(res.member) };
      },
      MemberRemove: async (r: { ID: string }) => listResponse(server, await server.memberRemove(BigInt(r.ID))),
      MemberUpdate: async (r: { ID: string; peerURLs: string[] }) => listResponse(server, await server.memberUpdate(BigInt(r.ID), r.peerURLs ?? [])),
      MemberPromote: async (r: { ID: string }) => listResponse(server, await server.memberPromote(BigInt(r.ID))),
    },
  };
}
