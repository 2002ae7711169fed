export { createGrpcServer, GRPC_OVERHEAD_BYTES } from './grpc';
export { createHttpHandler } from './http';
export { ClientListener } from './listener';
