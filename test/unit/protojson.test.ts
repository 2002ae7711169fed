// The gateway's JSON reading and writing (src/api/protojson.ts) on the etcd API's own message types.
import { JsonRequestError, JsonValueSplitter, jsonToProto, protoToJson } from '../../src/api/protojson';
import { LOADER_OPTIONS, messageType } from '../../src/util/proto';

const range = messageType('etcdserverpb.RangeRequest');
const txn = messageType('etcdserverpb.TxnRequest');

const read = (type: ReturnType<typeof messageType>, text: string) => type.toObject(type.decode(jsonToProto(type, text)), LOADER_OPTIONS);
const refusal = (type: ReturnType<typeof messageType>, text: string) => {
  try {
    jsonToProto(type, text);
  } catch (err) {
    expect(err).toBeInstanceOf(JsonRequestError);
    return (err as Error).message;
  }
  throw new Error(`${text} was accepted`);
};

describe('reading requests', () => {
  test('either field name, base64 of both alphabets with or without padding, 64-bit integers as strings or numbers', () => {
    const r = read(range, '{"key":"Zm9v","rangeEnd":"-_8","limit":"10","revision":1e1,"sort_order":"DESCEND","serializable":true}');
    expect(r.key).toEqual(Buffer.from('foo'));
    expect(r.range_end).toEqual(Buffer.from([0xfb, 0xff]));
    expect(r.limit).toBe('10');
    expect(r.revision).toBe('10');
    expect(r.sort_order).toBe(2);
    expect(r.serializable).toBe(true);
  });

  test('integers: exponents that stay whole are taken, fractions and overflow are not', () => {
    expect(read(range, '{"limit":"2.5e1"}').limit).toBe('25');
    expect(read(range, '{"limit":-0}').limit).toBe('0');
    expect(read(range, '{"limit":"9223372036854775807"}').limit).toBe('9223372036854775807');
    expect(refusal(range, '{"limit":"9223372036854775808"}')).toBe('proto: (line 1:10): invalid value for int64 field limit: "9223372036854775808"');
    expect(refusal(range, '{"limit":2.5}')).toBe('proto: (line 1:10): invalid value for int64 field limit: 2.5');
    expect(refusal(range, '{"limit":true}')).toBe('proto: (line 1:10): invalid value for int64 field limit: true');
  });

  test('positions count lines and columns', () => {
    expect(refusal(range, '{\n  "key": "Zm9v",\n  "limit": "x"\n}')).toBe('proto: (line 3:12): invalid value for int64 field limit: "x"');
  });

  test('nested messages, repeated fields and oneofs', () => {
    const t = read(txn, '{"compare":[{"key":"YQ==","target":"MOD","mod_revision":"3"}],"success":[{"request_txn":{"failure":[{"request_put":{"key":"Yg=="}}]}}]}');
    expect(t.compare[0].target).toBe(2); // VERSION, CREATE, MOD, VALUE, LEASE
    expect(t.compare[0].target_union).toBe('mod_revision');
    expect(t.success[0].request).toBe('request_txn');
    expect(t.success[0].request_txn.failure[0].request_put.key).toEqual(Buffer.from('b'));
    expect(refusal(txn, '{"success":[{"request_put":{},"requestRange":{}}]}')).toBe(
      'proto: (line 1:31): error parsing "requestRange", oneof etcdserverpb.RequestOp.request is already set',
    );
  });

  test('syntax errors are named as Go names them', () => {
    expect(refusal(range, '{"key":"a')).toBe('unexpected EOF');
    expect(refusal(range, '{"key" "a"}')).toBe("invalid character '\"' after object key");
    expect(refusal(range, '{"key":"a" "b"}')).toBe("invalid character '\"' after object key:value pair");
    expect(refusal(range, '{"key":-}')).toBe("invalid character '}' in numeric literal");
    expect(refusal(range, '{"key":"\u0001"}')).toBe("invalid character '\\u0001' in string literal");
    expect(refusal(range, '{"key":nul}')).toBe("invalid character '}' in literal null (expecting 'l')");
  });

  test('an empty or blank body is the empty message; what follows the first value is ignored', () => {
    expect(jsonToProto(range, '').length).toBe(0);
    expect(jsonToProto(range, ' \n ').length).toBe(0);
    expect(read(range, '{"key":"YQ=="} trailing').key).toEqual(Buffer.from('a'));
  });
});

describe('writing responses', () => {
  test('proto names, int64 as strings, bytes as base64, enums by name, zero values and empty lists left out, set messages kept', () => {
    const resp = messageType('etcdserverpb.WatchResponse');
    const json = protoToJson(resp, {
      header: { cluster_id: '18446744073709551615', revision: 5 },
      watch_id: 0,
      created: false,
      events: [
        { type: 0, kv: { key: Buffer.from('k'), value: Buffer.alloc(0), mod_revision: '5' } },
        { type: 1, kv: { key: Buffer.from('k') }, prev_kv: {} },
      ],
      cancel_reason: '',
    });
    expect(json).toEqual({
      header: { cluster_id: '18446744073709551615', revision: '5' },
      events: [{ kv: { key: 'aw==', mod_revision: '5' } }, { type: 'DELETE', kv: { key: 'aw==' }, prev_kv: {} }],
    });
    // fields come out in field-number order
    expect(Object.keys(protoToJson(messageType('etcdserverpb.ResponseHeader'), { raft_term: 2, member_id: 1, revision: 3, cluster_id: 4 }))).toEqual([
      'cluster_id',
      'member_id',
      'revision',
      'raft_term',
    ]);
  });

  test('negative int64 values stay negative', () => {
    expect(protoToJson(messageType('etcdserverpb.WatchResponse'), { watch_id: -1 })).toEqual({ watch_id: '-1' });
  });
});

describe('splitting a streamed body into requests', () => {
  test('values split across pushes, separated by nothing or by whitespace, strings holding braces', () => {
    const s = new JsonValueSplitter();
    const got: string[] = [];
    for (const piece of ['{"a":"}{', '"}{"b":', '[1,{}]}  {"c"', ':"\\""}', ' 12 ', 'true']) got.push(...s.push(piece));
    expect(got).toEqual(['{"a":"}{"}', '{"b":[1,{}]}', '{"c":"\\""}', '12']);
    expect(s.rest()).toBe('true');
  });
});
