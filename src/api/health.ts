// grpc.health.v1.Health: SERVING while the member serves.
import { ServiceModule } from './service';

export function healthService(): ServiceModule {
  return { service: 'grpc.health.v1.Health', unary: { Check: () => ({ status: 1 }) } };
}
