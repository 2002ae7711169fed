// etcdserverpb.KV: Range, Put, DeleteRange, Txn, Compact.
import { CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest } from '../pb';
import { ApiDeps, ServiceModule } from './service';

export function kvService({ server }: ApiDeps): ServiceModule {
  return {
    service: 'etcdserverpb.KV',
    unary: {
      Range: (r: RangeRequest) => server.range(r),
      Put: (r: PutRequest) => server.put(r),
      DeleteRange: (r: DeleteRangeRequest) => server.deleteRange(r),
      Txn: (r: TxnRequest) => server.txn(r),
      Compact: (r: CompactionRequest) => server.compact(r),
    },
  };
}
