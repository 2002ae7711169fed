// Kubernetes API access for the operator.
export * from './client';
