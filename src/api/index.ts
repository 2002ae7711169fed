export { createGrpcServer, GRPC_OVERHEAD_BYTES, toServiceError, grpcCodeName } from './grpc';
export { createHttpHandler } from './http';
export { ClientListener } from './listener';
export type { ApiDeps, ServiceModule } from './service';
