// Loads the .proto files (the wire contract) once: grpc-js service definitions for the API, and protobufjs
// types for messages we encode ourselves (log entries).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import * as protobuf from 'protobufjs';

/** The repository's proto/ folder, found from this file whether it runs from src/ (tests) or dist/. */
export function protoDir(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, 'proto');
    if (fs.existsSync(path.join(candidate, 'etcdserverpb', 'rpc.proto'))) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error('cannot find the proto/ folder next to the etcd-ts installation');
}

export const API_PROTOS = [
  'etcdserverpb/rpc.proto',
  'v3electionpb/v3election.proto',
  'v3lockpb/v3lock.proto',
  'grpc/health/v1/health.proto',
];

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: Number,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
};

let packageDefinition: protoLoader.PackageDefinition | undefined;
export function apiPackageDefinition(): protoLoader.PackageDefinition {
  if (!packageDefinition) {
    packageDefinition = protoLoader.loadSync(API_PROTOS, { ...LOADER_OPTIONS, includeDirs: [protoDir()] });
  }
  return packageDefinition;
}

let root: protobuf.Root | undefined;
export function protoRoot(): protobuf.Root {
  if (!root) {
    const dir = protoDir();
    const r = new protobuf.Root();
    r.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(dir, target));
    r.loadSync(['etcdts/internal.proto', ...API_PROTOS], { keepCase: true });
    r.resolveAll();
    root = r;
  }
  return root;
}

export const TO_OBJECT: protobuf.IConversionOptions = { longs: String, enums: Number, defaults: true, oneofs: true };

export function messageType(name: string): protobuf.Type {
  return protoRoot().lookupType(name);
}
