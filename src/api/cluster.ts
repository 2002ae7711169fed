// etcdserverpb.Cluster: membership. A single member offers MemberList; changes come with Raft.
import { memberToPb } from '../server';
import { ApiDeps, ServiceModule } from './service';

export function clusterService({ server }: ApiDeps): ServiceModule {
  return {
    service: 'etcdserverpb.Cluster',
    unary: {
      // etcd's cluster API headers carry no revision.
      MemberList: () => ({ header: { ...server.header(), revision: 0 }, members: server.memberList().map(memberToPb) }),
    },
  };
}
