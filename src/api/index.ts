export { createGrpcServer, GRPC_OVERHEAD_BYTES, toServiceError, grpcCodeName } from './grpc';
export { createHttpHandler } from './http';
export { createGateway, GATEWAY_ROUTES } from './gateway';
export { ClientListener, MetricsListener } from './listener';
export type { ApiDeps, ServiceModule } from './service';
