// The shape every gRPC service module of api/ has, so each service lives in its own file and grpc.ts only
// wires them up (with etcd's error mapping and the grpc_server_* metrics around every call).
import * as grpc from '@grpc/grpc-js';
import { EtcdServer } from '../server';
import { Logger } from '../util/logger';

export type UnaryHandler = (request: never, call: grpc.ServerUnaryCall<unknown, unknown>) => unknown | Promise<unknown>;
/** Writes responses with call.write(); resolves when the stream should end with OK. */
export type ServerStreamHandler = (request: never, call: grpc.ServerWritableStream<unknown, unknown>) => Promise<void>;
/** Owns the whole duplex stream (reads, writes, ends it). */
export type BidiHandler = (call: grpc.ServerDuplexStream<unknown, unknown>) => void;

export interface ServiceModule {
  /** Full proto service name, e.g. "etcdserverpb.KV". */
  service: string;
  unary?: Record<string, UnaryHandler>;
  serverStream?: Record<string, ServerStreamHandler>;
  bidi?: Record<string, BidiHandler>;
}

export interface ApiDeps {
  server: EtcdServer;
  log: Logger;
  dbSize: () => number;
  dbSizeInUse: () => number;
  /** --client-cert-auth: a client certificate's CN is the user when no token is given */
  clientCertAuth?: boolean;
}
