export * from './procs';
