// The binding ships no type declarations; this covers the surface storage/ uses.
declare module '@nxtedition/rocksdb' {
  export class RocksLevel<K = Buffer, V = Buffer> {
    constructor(location: string, options?: { keyEncoding?: string; valueEncoding?: string });
    readonly status: string;
    open(options?: Record<string, unknown>): Promise<void>;
    close(): Promise<void>;
    batch(): { put(key: K, value: V): void; del(key: K): void; write(options?: { sync?: boolean }): Promise<void> };
    iterator(options: { gte?: K; lt?: K; reverse?: boolean; limit?: number }): unknown;
    clear(options: { gte?: K; lt?: K }): Promise<void>;
    getProperty(name: string): unknown;
  }
}
