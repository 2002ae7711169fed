// The peer transport: raft messages, snapshots and a few member-to-member calls over HTTP/1.1 on the
// peer port.
//
// Sending raft messages: per peer an outgoing queue and at most one POST /raft in flight on a keep-alive
// connection; each POST carries everything queued so far (up to a byte budget) as one encoded batch, and
// the next batch leaves as soon as the previous answer arrives. That keeps per-peer order and batches
// naturally under load (a slow peer gets bigger batches, not more connections). Nothing here retries:
// on a failed request the batch and the queue are dropped, raft hears `onUnreachable`, and the peer is
// left alone for a backoff period (50 ms doubling to 500 ms) during which new messages are dropped too —
// raft retransmits what matters (heartbeats, probes) on its own schedule.
//
// Snapshots stream on their own POST /raft/snapshot (the MsgSnap in a header, the state as the body)
// so a multi-GiB body never blocks the message pipeline. Receiving side: `handler` serves the peer port
// (the server owns the listener; create it with PEER_SERVER_OPTIONS).
//
// Every request carries the sender's cluster id, member id and version; the receiver refuses other
// clusters (412), members it removed (410), and bodies it cannot decode (400).
import * as http from 'node:http';
import * as https from 'node:https';
import * as tls from 'node:tls';
import { Readable, Transform, TransformCallback, pipeline } from 'node:stream';
import { Message, MessageType, entrySize } from '../raft/types';
import { Logger } from '../util/logger';
import { decodeMessages, encodeMessages } from './codec';
import { idLabel, peerMetrics } from './metrics';

export const HEADER_CLUSTER_ID = 'X-Etcd-Cluster-ID';
export const HEADER_FROM = 'X-Server-From';
export const HEADER_VERSION = 'X-Server-Version';
/** The member the request is meant for; a receiver with another id refuses it (a stale peer URL). */
export const HEADER_TO = 'X-Raft-To';
export const HEADER_SNAPSHOT_MESSAGE = 'X-Raft-Snapshot-Message';
/** The cluster version /version reports. */
export const CLUSTER_VERSION = '3.6.0';

export const PATH_RAFT = '/raft';
export const PATH_SNAPSHOT = '/raft/snapshot';
export const PATH_MEMBERS = '/members';
export const PATH_VERSION = '/version';
export const PATH_LEADER_PREFIX = '/etcdts/leader/';

/**
 * Options for the node:http server of the peer port. `requestTimeout: 0` because a snapshot upload may
 * legitimately take longer than node's default 5 minutes (the transport applies its own idle timeout);
 * a larger header limit leaves room for the MsgSnap header of a big configuration.
 */
export const PEER_SERVER_OPTIONS: http.ServerOptions = { requestTimeout: 0, maxHeaderSize: 64 * 1024 };

/** Limits and timeouts; the defaults suit a LAN cluster. Tests shorten them. */
export interface PeerTransportTuning {
  /** messages queued per peer before new ones are dropped */
  maxQueuedMessages: number;
  /** approximate byte budget of one /raft batch (at least one message always goes) */
  maxBatchBytes: number;
  /** largest /raft body accepted (413 beyond) */
  maxRaftBodyBytes: number;
  /** a /raft POST must be answered within this time */
  requestTimeoutMs: number;
  /** first backoff after a failed send, doubling per consecutive failure up to backoffMaxMs */
  backoffStartMs: number;
  backoffMaxMs: number;
  /** a snapshot stream (either side) with no bytes moving for this long is aborted */
  snapshotIdleTimeoutMs: number;
  /** after the whole snapshot body is sent, how long the receiver may take to install it and answer */
  snapshotResponseTimeoutMs: number;
  /** receiving side: time allowed to read a non-snapshot request body */
  receiveTimeoutMs: number;
}

export const DEFAULT_TUNING: Readonly<PeerTransportTuning> = Object.freeze({
  maxQueuedMessages: 4096,
  maxBatchBytes: 8 * 1024 * 1024,
  maxRaftBodyBytes: 64 * 1024 * 1024,
  requestTimeoutMs: 5000,
  backoffStartMs: 50,
  backoffMaxMs: 500,
  snapshotIdleTimeoutMs: 30_000,
  snapshotResponseTimeoutMs: 120_000,
  receiveTimeoutMs: 30_000,
});

/** Largest leader-call / members body either side reads. */
const MAX_JSON_BYTES = 16 * 1024 * 1024;
/** How much of an error response body is kept for the log. */
const MAX_ERROR_BODY = 4096;

export interface PeerTransportOptions {
  localId: bigint;
  /** may change once (a joining member learns it) */
  clusterId: () => bigint;
  logger: Logger;
  /** server version string, sent in header X-Server-Version */
  version: string;
  /** deliver received raft messages (never MsgSnap) */
  onMessages(msgs: Message[]): void;
  /** a send to peer failed */
  onUnreachable(peer: bigint): void;
  /** outcome of a sendSnapshot */
  onSnapshotStatus(peer: bigint, ok: boolean): void;
  /** receive a streamed snapshot: msg is the MsgSnap (its snapshot.data empty), body the stream. Resolve once installed. */
  receiveSnapshot(msg: Message, body: NodeJS.ReadableStream): Promise<void>;
  /** JSON for GET /members (the member list), used by a member joining with --initial-cluster-state=existing */
  membersJson(): unknown;
  /** messages from removed members get HTTP 410 and a log line */
  isRemoved(id: bigint): boolean;
  /** leader-side calls a follower forwards (e.g. member promote): op name + JSON body -> JSON result or throw Error */
  onLeaderCall(op: string, body: unknown): Promise<unknown>;
  /** CA and certificate for https peer URLs (this member's peer certificate serves as client certificate) */
  clientTls?: tls.SecureContextOptions;
  /** a peer answered 410 Gone: this member was removed from the cluster (called once) */
  onRemoved?(): void;
  /** limits and timeouts (defaults: DEFAULT_TUNING) */
  tuning?: Partial<PeerTransportTuning>;
}

/**
 * The one place peer HTTP agents are made (TLS will plug in here). Idle pooled connections are closed
 * after 4 s, before node's default 5 s server keep-alive: reusing a connection the server is closing
 * at that very moment fails the request, which would show up as a spurious "peer became inactive"
 * (follower-to-follower links idle until a leader change).
 */
function createPeerAgent(): http.Agent {
  return new http.Agent({ keepAlive: true, scheduling: 'lifo', timeout: 4000 });
}

/** The agent for https peer URLs: this member's peer certificate as the client certificate, and the peer CA. */
function createPeerTlsAgent(opts: tls.SecureContextOptions | undefined): https.Agent {
  return new https.Agent({ keepAlive: true, scheduling: 'lifo', timeout: 4000, ...(opts ?? {}) });
}

/** Errors that prove a request never reached the peer (so trying another URL cannot run it twice). */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL']);

/** Parse a peer URL; only http for now. Throws an Error naming the URL. */
export function parsePeerUrl(raw: string): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new Error(`invalid peer URL ${JSON.stringify(raw)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`unsupported peer URL ${JSON.stringify(raw)}: peer URLs are http:// or https://`);
  return u;
}

/** Parse a hex member/cluster id header; undefined when absent or malformed. */
function parseHexId(v: string | string[] | undefined): bigint | undefined {
  if (typeof v !== 'string' || !/^[0-9a-fA-F]{1,16}$/.test(v)) return undefined;
  return BigInt('0x' + v);
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A peer answered with an HTTP status other than success. */
export class PeerHttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(`peer answered HTTP ${status}${body ? `: ${body.trim()}` : ''}`);
    this.name = 'PeerHttpError';
  }
}

class BodyTooLargeError extends Error {
  constructor(limit: number) {
    super(`request body exceeds ${limit} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

/**
 * Read a whole message body up to `limit` bytes. Rejects when the body is larger (BodyTooLargeError; the
 * stream is paused, the caller decides), when the stream errors, or when it closes before its end.
 */
function readBody(stream: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err: Error | undefined) => {
      if (done) return;
      done = true;
      stream.off('data', onData);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        stream.pause();
        finish(new BodyTooLargeError(limit));
      } else {
        chunks.push(chunk);
      }
    };
    stream.on('data', onData);
    stream.once('end', () => finish(undefined));
    stream.once('error', (err) => finish(err));
    stream.once('close', () => finish(new Error('connection closed before the body was complete')));
  });
}

/** Read at most `limit` bytes of a response body as text (for error messages), discarding the rest. */
async function readErrorText(res: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    if (size < MAX_ERROR_BODY) chunks.push(chunk.subarray(0, MAX_ERROR_BODY - size));
    size += chunk.length;
  }
  return Buffer.concat(chunks).toString('utf8');
}

interface SimpleRequest {
  url: URL;
  path: string;
  method: string;
  headers?: http.OutgoingHttpHeaders;
  body?: Buffer;
  timeoutMs: number;
  agent: http.Agent | false;
  /** requests in flight, so a closing transport can abort them */
  track?: Set<http.ClientRequest>;
  /** for https without an agent: CA and client certificate */
  tls?: tls.SecureContextOptions;
}

/** http.request or https.request, by the URL's scheme. */
function requestFor(url: URL, opts: http.RequestOptions | https.RequestOptions): http.ClientRequest {
  return url.protocol === 'https:' ? https.request(opts) : http.request(opts);
}

interface SimpleResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function requestOptions(url: URL, path: string, method: string, agent: http.Agent | false, headers: http.OutgoingHttpHeaders): http.RequestOptions {
  return {
    protocol: url.protocol,
    hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'), // IPv6 literals come bracketed from URL
    port: url.port || (url.protocol === 'https:' ? 443 : 80),
    path: url.pathname.replace(/\/+$/, '') + path,
    method,
    agent,
    headers,
  };
}

/** One bounded request/response exchange with the whole (size-limited) response body. */
function simpleRequest(o: SimpleRequest): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    const headers = { ...o.headers };
    if (o.body !== undefined) headers['Content-Length'] = o.body.length;
    const req = requestFor(o.url, { ...requestOptions(o.url, o.path, o.method, o.agent, headers), ...(o.agent === false && o.url.protocol === 'https:' ? (o.tls ?? {}) : {}) });
    o.track?.add(req);
    let done = false;
    const finish = (err: Error | undefined, r?: SimpleResponse) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      o.track?.delete(req);
      if (err) {
        req.destroy();
        reject(err);
      } else {
        resolve(r as SimpleResponse);
      }
    };
    const timer = setTimeout(() => finish(new Error(`request to ${o.url.origin}${o.path} timed out after ${o.timeoutMs} ms`)), o.timeoutMs);
    req.on('error', (err) => finish(err));
    req.on('response', (res) => {
      readBody(res, MAX_JSON_BYTES).then(
        (body) => finish(undefined, { status: res.statusCode ?? 0, headers: res.headers, body }),
        (err: Error) => finish(err),
      );
    });
    req.end(o.body);
  });
}

/** Per-peer sending state. */
interface Peer {
  id: bigint;
  label: string;
  /** the URLs as given (to recognise an update that changes nothing) */
  urlsGiven: string[];
  urls: URL[];
  /** index of the URL in use; moves on after a failure */
  urlIndex: number;
  queue: Message[];
  inflight?: http.ClientRequest;
  /** length of the current backoff period; 0 while sends succeed */
  backoffMs: number;
  backoffTimer?: NodeJS.Timeout;
  /** whether onUnreachable was already called in the current backoff period */
  unreachableReported: boolean;
  /** whether the queue overflowed since the last batch left (to log and report once per episode) */
  overflowed: boolean;
  active: boolean;
  activeSince?: number;
  /** snapshot uploads in flight */
  snapshots: Set<http.ClientRequest>;
  removed: boolean;
  /** when the last /raft POST left (ms); an idle peer gets an empty one now and then (see probe) */
  lastSentAt: number;
  probeDue: boolean;
}

/**
 * An idle link (follower to follower, or everything while a member waits) carries an empty /raft POST
 * this often, so "reachable since" stays true to what the network does: strict reconfiguration checks
 * and timeout explanations depend on it, as they do on etcd's always-open peer streams.
 */
const PROBE_INTERVAL_MS = 1000;

export class PeerTransport {
  private readonly opts: PeerTransportOptions;
  private readonly tuning: PeerTransportTuning;
  private readonly log: Logger;
  private localId: bigint;
  private localLabel: string;
  private readonly agent = createPeerAgent();
  /** for https peers; replaced when the peer certificates are reloaded (idle old connections then close) */
  private tlsAgent: https.Agent;

  private agentFor(url: URL): http.Agent {
    return url.protocol === 'https:' ? this.tlsAgent : this.agent;
  }

  /** New client-side TLS settings for https peers (a certificate rotation): later requests use them. */
  setClientTls(opts: tls.SecureContextOptions): void {
    const old = this.tlsAgent;
    this.tlsAgent = createPeerTlsAgent(opts);
    setTimeout(() => old.destroy(), 10_000).unref();
  }
  private readonly peers = new Map<bigint, Peer>();
  /** leader calls in flight (aborted by close) */
  private readonly calls = new Set<http.ClientRequest>();
  /** snapshot bodies being received (destroyed by close) */
  private readonly incoming = new Set<http.IncomingMessage>();
  /** logged once: a peer told us we were removed */
  private removedLogged = false;
  private closed = false;

  constructor(opts: PeerTransportOptions) {
    this.opts = opts;
    this.tuning = { ...DEFAULT_TUNING };
    for (const [k, v] of Object.entries(opts.tuning ?? {})) {
      if (v !== undefined) this.tuning[k as keyof PeerTransportTuning] = v;
    }
    this.log = opts.logger;
    this.localId = opts.localId;
    this.localLabel = idLabel(opts.localId);
    this.tlsAgent = createPeerTlsAgent(opts.clientTls);
    this.probeTimer = setInterval(() => this.probe(), PROBE_INTERVAL_MS);
    this.probeTimer.unref();
  }

  private readonly probeTimer: NodeJS.Timeout;

  private probe(): void {
    const now = Date.now();
    for (const peer of this.peers.values()) {
      if (peer.inflight === undefined && peer.queue.length === 0 && now - peer.lastSentAt >= PROBE_INTERVAL_MS) {
        peer.probeDue = true;
        this.pump(peer);
      }
    }
  }

  /**
   * Set this member's id when it was not known at construction (the peer port may have to answer, e.g.
   * GET /members, before the server has read or derived its id). While it is 0n, the receiver skips the
   * X-Raft-To check.
   */
  setLocalId(id: bigint): void {
    if (id === this.localId) return;
    for (const peer of this.peers.values()) {
      // the active-peers gauge is labelled with the local id: move the series
      if (peer.active) {
        peerMetrics.activePeers.dec({ Local: this.localLabel, Remote: peer.label });
        peerMetrics.activePeers.inc({ Local: idLabel(id), Remote: peer.label });
      }
    }
    this.localId = id;
    this.localLabel = idLabel(id);
  }

  // -------------------------------------------------------------------------------------------------
  // Peer set

  addPeer(id: bigint, urls: string[]): void {
    if (this.closed) return;
    const existing = this.peers.get(id);
    if (existing !== undefined) {
      this.updatePeer(id, urls);
      return;
    }
    const peer: Peer = {
      id,
      label: idLabel(id),
      urlsGiven: [...urls],
      urls: this.parseUrls(id, urls),
      urlIndex: 0,
      queue: [],
      backoffMs: 0,
      unreachableReported: false,
      overflowed: false,
      active: false,
      snapshots: new Set(),
      removed: false,
      lastSentAt: 0,
      probeDue: false,
    };
    this.peers.set(id, peer);
    this.log.info({ 'local-member-id': this.localLabel, 'remote-peer-id': peer.label, 'remote-peer-urls': urls }, 'added remote peer');
  }

  /**
   * New URLs for a peer (a member update); an unknown peer is added. Unchanged URLs are a no-op (the
   * server may replay membership on restart); changed ones clear the backoff.
   */
  updatePeer(id: bigint, urls: string[]): void {
    if (this.closed) return;
    const peer = this.peers.get(id);
    if (peer === undefined) {
      this.addPeer(id, urls);
      return;
    }
    if (peer.urlsGiven.length === urls.length && peer.urlsGiven.every((u, i) => u === urls[i])) return;
    peer.urlsGiven = [...urls];
    peer.urls = this.parseUrls(id, urls);
    peer.urlIndex = 0;
    peer.backoffMs = 0;
    this.clearBackoff(peer);
    this.log.info({ 'local-member-id': this.localLabel, 'remote-peer-id': peer.label, 'remote-peer-urls': urls }, 'updated remote peer');
    this.pump(peer);
  }

  /** Forget a peer: aborts its requests (an in-flight snapshot reports failure) and drops its queue. */
  removePeer(id: bigint): void {
    const peer = this.peers.get(id);
    if (peer === undefined) return;
    this.peers.delete(id);
    this.stopPeer(peer);
    this.log.info({ 'local-member-id': this.localLabel, 'remote-peer-id': peer.label }, 'removed remote peer');
  }

  hasPeer(id: bigint): boolean {
    return this.peers.has(id);
  }

  /** Milliseconds timestamp since which the peer has been continuously reachable; undefined if it is not. */
  activeSince(id: bigint): number | undefined {
    return this.peers.get(id)?.activeSince;
  }

  private parseUrls(id: bigint, urls: string[]): URL[] {
    const out: URL[] = [];
    for (const raw of urls) {
      try {
        out.push(parsePeerUrl(raw));
      } catch (err) {
        // Not fatal here (this may run while applying a membership change); sends to a peer without a
        // usable URL simply fail and raft hears that it is unreachable.
        this.log.error({ 'remote-peer-id': idLabel(id), error: errorMessage(err) }, 'ignoring peer URL');
      }
    }
    return out;
  }

  private stopPeer(peer: Peer): void {
    peer.removed = true;
    peer.queue = [];
    this.clearBackoff(peer);
    peer.inflight?.destroy(new Error('peer removed'));
    for (const req of peer.snapshots) req.destroy(new Error('peer removed'));
    if (peer.active) {
      peer.active = false;
      peer.activeSince = undefined;
      peerMetrics.activePeers.dec({ Local: this.localLabel, Remote: peer.label });
    }
  }

  private clearBackoff(peer: Peer): void {
    if (peer.backoffTimer !== undefined) clearTimeout(peer.backoffTimer);
    peer.backoffTimer = undefined;
    peer.unreachableReported = false;
  }

  // -------------------------------------------------------------------------------------------------
  // Sending raft messages

  /**
   * Queue messages for their peers; never blocks and never throws for network reasons. A MsgSnap should
   * go through sendSnapshot; one passed here anyway is streamed from its inline snapshot.data.
   */
  send(msgs: Message[]): void {
    if (this.closed) return;
    const touched = new Set<Peer>();
    for (const m of msgs) {
      if (m.type === MessageType.Snap) {
        const data = m.snapshot?.data ?? new Uint8Array(0);
        this.sendSnapshot(m, () => Readable.from([Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
        continue;
      }
      const peer = this.peers.get(m.to);
      if (peer === undefined) {
        this.log.debug({ 'local-member-id': this.localLabel, 'remote-peer-id': idLabel(m.to), 'message-type': MessageType[m.type] }, 'ignored message send request; unknown remote peer target');
        continue;
      }
      if (peer.backoffTimer !== undefined) {
        this.drop(peer, 1);
        continue;
      }
      if (peer.queue.length >= this.tuning.maxQueuedMessages) {
        this.drop(peer, 1);
        if (!peer.overflowed) {
          peer.overflowed = true;
          this.log.warn({ 'local-member-id': this.localLabel, 'remote-peer-id': peer.label, 'queued-messages': peer.queue.length }, 'dropped internal Raft message since sending buffer is full (overloaded network)');
          this.reportUnreachable(peer);
        }
        continue;
      }
      peer.queue.push(m);
      touched.add(peer);
    }
    for (const peer of touched) this.pump(peer);
  }

  /** Count dropped messages; during a backoff period raft hears about it at most once. */
  private drop(peer: Peer, count: number): void {
    peerMetrics.sentFailures.inc({ To: peer.label }, count);
    if (peer.backoffTimer !== undefined && !peer.unreachableReported) {
      peer.unreachableReported = true;
      this.reportUnreachable(peer);
    }
  }

  private reportUnreachable(peer: Peer): void {
    // Deferred: send() runs inside the server's Ready handling; raft must not be re-entered from there.
    setImmediate(() => this.callback('onUnreachable', () => this.opts.onUnreachable(peer.id)));
  }

  /** Take the next batch off the queue: everything up to the byte budget, at least one message. */
  private takeBatch(peer: Peer): Message[] {
    let bytes = 0;
    let n = 0;
    for (; n < peer.queue.length; n++) {
      const m = peer.queue[n];
      let size = 96 + (m.context?.length ?? 0);
      for (const e of m.entries) size += entrySize(e);
      if (n > 0 && bytes + size > this.tuning.maxBatchBytes) break;
      bytes += size;
    }
    return peer.queue.splice(0, n);
  }

  /** Start the next /raft POST for a peer if it is idle and has something queued. */
  private pump(peer: Peer): void {
    if (this.closed || peer.removed || peer.inflight !== undefined || peer.backoffTimer !== undefined) return;
    if (peer.queue.length === 0 && !peer.probeDue) return;
    peer.probeDue = false;
    peer.lastSentAt = Date.now();
    const batch = this.takeBatch(peer);
    peer.overflowed = false;
    let body: Buffer;
    try {
      body = encodeMessages(batch);
    } catch (err) {
      // Only a programming error gets here (e.g. a non-integer term); drop the batch, keep going.
      this.log.error({ 'remote-peer-id': peer.label, error: errorMessage(err) }, 'failed to encode raft messages; dropped them');
      peerMetrics.sentFailures.inc({ To: peer.label }, batch.length);
      setImmediate(() => this.pump(peer));
      return;
    }
    if (peer.urls.length === 0) {
      this.sendFailed(peer, batch.length, new Error('no usable peer URL'));
      return;
    }
    const url = peer.urls[peer.urlIndex % peer.urls.length];
    const start = process.hrtime.bigint();
    const req = requestFor(
      url,
      requestOptions(url, PATH_RAFT, 'POST', this.agentFor(url), {
        ...this.identityHeaders(peer.id),
        'Content-Type': 'application/octet-stream',
        'Content-Length': body.length,
      }),
    );
    peer.inflight = req;
    let done = false;
    const finish = (err: Error | undefined) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (peer.inflight === req) peer.inflight = undefined;
      if (err) req.destroy();
      if (this.closed || peer.removed) return;
      if (err) {
        this.sendFailed(peer, batch.length, err);
      } else {
        peerMetrics.roundTripTime.observe({ To: peer.label }, Number(process.hrtime.bigint() - start) / 1e9);
        peer.backoffMs = 0;
        this.setActive(peer);
        this.pump(peer);
      }
    };
    const timer = setTimeout(() => finish(new Error(`request timed out after ${this.tuning.requestTimeoutMs} ms`)), this.tuning.requestTimeoutMs);
    req.on('error', (err) => finish(err));
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      if (status === 204 || status === 200) {
        res.resume(); // drain so the connection can be reused
        res.once('end', () => finish(undefined));
        res.once('error', (err) => finish(err));
        res.once('close', () => finish(res.complete ? undefined : new Error('connection closed before the response was complete')));
      } else {
        readErrorText(res).then(
          (text) => finish(new PeerHttpError(status, text)),
          (err: Error) => finish(err),
        );
      }
    });
    req.end(body);
    peerMetrics.sentBytes.inc({ To: peer.label }, body.length);
  }

  /** A /raft POST failed: drop it and the queue, report, try the next URL after a backoff. */
  private sendFailed(peer: Peer, count: number, err: Error): void {
    const dropped = count + peer.queue.length;
    peer.queue = [];
    peerMetrics.sentFailures.inc({ To: peer.label }, dropped);
    if (peer.urls.length > 0) peer.urlIndex = (peer.urlIndex + 1) % peer.urls.length;
    if (err instanceof PeerHttpError && err.status === 410 && !this.removedLogged) {
      this.removedLogged = true;
      this.log.error({ 'local-member-id': this.localLabel, 'remote-peer-id': peer.label }, 'this member has been permanently removed from the cluster (a peer answered 410 Gone)');
      const onRemoved = this.opts.onRemoved;
      if (onRemoved) setImmediate(() => onRemoved());
    }
    this.setInactive(peer, err);
    this.log.debug({ 'remote-peer-id': peer.label, error: err.message, 'dropped-messages': dropped }, 'failed to send raft messages to peer');
    peer.backoffMs = peer.backoffMs === 0 ? this.tuning.backoffStartMs : Math.min(peer.backoffMs * 2, this.tuning.backoffMaxMs);
    peer.unreachableReported = true;
    this.reportUnreachable(peer);
    peer.backoffTimer = setTimeout(() => {
      peer.backoffTimer = undefined;
      peer.unreachableReported = false;
      this.pump(peer);
    }, peer.backoffMs);
  }

  private setActive(peer: Peer): void {
    if (peer.active) return;
    peer.active = true;
    peer.activeSince = Date.now();
    peerMetrics.activePeers.inc({ Local: this.localLabel, Remote: peer.label });
    this.log.info({ 'local-member-id': this.localLabel, 'remote-peer-id': peer.label }, 'peer became active');
  }

  private setInactive(peer: Peer, err: Error): void {
    if (!peer.active) return;
    peer.active = false;
    peer.activeSince = undefined;
    peerMetrics.activePeers.dec({ Local: this.localLabel, Remote: peer.label });
    peerMetrics.disconnectedPeers.inc({ Local: this.localLabel, Remote: peer.label });
    this.log.warn({ 'local-member-id': this.localLabel, 'remote-peer-id': peer.label, error: err.message }, 'peer became inactive (message send to peer failed)');
  }

  private identityHeaders(to: bigint): http.OutgoingHttpHeaders {
    return {
      [HEADER_CLUSTER_ID]: this.opts.clusterId().toString(16),
      [HEADER_FROM]: this.localLabel,
      [HEADER_VERSION]: this.opts.version,
      [HEADER_TO]: idLabel(to),
    };
  }

  /** Run an application callback; never after close, and a throwing callback cannot break the transport. */
  private callback(name: string, fn: () => void): void {
    if (this.closed) return;
    try {
      fn();
    } catch (err) {
      this.log.error({ error: errorMessage(err) }, `peer transport: ${name} callback threw`);
    }
  }

  // -------------------------------------------------------------------------------------------------
  // Sending snapshots

  /**
   * Stream a snapshot to msg.to: msg (a MsgSnap) travels in a header with its snapshot.data emptied, the
   * body comes from `open()`. Reports the outcome once with onSnapshotStatus(msg.to, ok) (not after close).
   */
  sendSnapshot(msg: Message, open: () => NodeJS.ReadableStream): void {
    if (this.closed) return;
    const label = idLabel(msg.to);
    const peer = this.peers.get(msg.to);
    const start = process.hrtime.bigint();
    let bytes = 0;
    let done = false;
    let req: http.ClientRequest | undefined = undefined; // set once the upload starts
    let body: Readable | undefined;
    let responseTimer: NodeJS.Timeout | undefined;
    peerMetrics.snapshotSendInflights.inc({ To: label });

    const finish = (err: Error | undefined) => {
      if (done) return;
      done = true;
      clearTimeout(responseTimer);
      peerMetrics.snapshotSendInflights.dec({ To: label });
      if (req !== undefined) {
        peer?.snapshots.delete(req);
        if (err) req.destroy();
      }
      if (err) body?.destroy();
      const took = Number(process.hrtime.bigint() - start) / 1e9;
      if (err) {
        peerMetrics.snapshotSendFailures.inc({ To: label });
        if (!this.closed) this.log.warn({ 'remote-peer-id': label, 'snapshot-index': msg.snapshot?.metadata.index, bytes, error: err.message }, 'failed to send database snapshot');
      } else {
        peerMetrics.snapshotSendSuccess.inc({ To: label });
        peerMetrics.snapshotSendSeconds.observe({ To: label }, took);
        this.log.info({ 'remote-peer-id': label, 'snapshot-index': msg.snapshot?.metadata.index, bytes, took: `${took.toFixed(3)}s` }, 'sent database snapshot to peer');
      }
      // Async in every case, so the caller is never re-entered from inside sendSnapshot.
      setImmediate(() => this.callback('onSnapshotStatus', () => this.opts.onSnapshotStatus(msg.to, err === undefined)));
    };

    if (peer === undefined || peer.urls.length === 0 || msg.snapshot === undefined) {
      finish(new Error(peer === undefined ? 'unknown peer' : peer.urls.length === 0 ? 'no usable peer URL' : 'MsgSnap without snapshot metadata'));
      return;
    }
    let header: string;
    try {
      header = encodeMessages([{ ...msg, snapshot: { metadata: msg.snapshot.metadata, data: new Uint8Array(0) } }]).toString('base64');
      const opened = open();
      body = opened instanceof Readable ? opened : Readable.from(opened as AsyncIterable<Buffer>);
    } catch (err) {
      finish(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    const url = peer.urls[peer.urlIndex % peer.urls.length];
    const r = requestFor(
      url,
      requestOptions(url, PATH_SNAPSHOT, 'POST', this.agentFor(url), {
        ...this.identityHeaders(msg.to),
        [HEADER_SNAPSHOT_MESSAGE]: header,
        'Content-Type': 'application/octet-stream',
      }),
    );
    req = r;
    peer.snapshots.add(r);
    // Socket idle timeout while streaming; once the body is out, the receiver installs the snapshot
    // before it answers, which may take a while without any bytes moving.
    r.setTimeout(this.tuning.snapshotIdleTimeoutMs, () => r.destroy(new Error(`snapshot stream idle for ${this.tuning.snapshotIdleTimeoutMs} ms`)));
    r.once('finish', () => {
      r.setTimeout(0);
      responseTimer = setTimeout(() => r.destroy(new Error(`no answer ${this.tuning.snapshotResponseTimeoutMs} ms after the snapshot was sent`)), this.tuning.snapshotResponseTimeoutMs);
    });
    r.on('error', (err) => finish(err));
    r.on('response', (res) => {
      const status = res.statusCode ?? 0;
      readErrorText(res).then(
        (text) => finish(status === 204 || status === 200 ? undefined : new PeerHttpError(status, text)),
        (err: Error) => finish(err),
      );
    });
    const counter = new Transform({
      transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
        bytes += chunk.length;
        peerMetrics.sentBytes.inc({ To: label }, chunk.length);
        cb(null, chunk);
      },
    });
    pipeline(body, counter, r, (err) => {
      if (err) finish(err);
    });
  }

  // -------------------------------------------------------------------------------------------------
  // Leader calls

  /**
   * POST a leader call to a peer within timeoutMs (moving on to its next URL only when a connection
   * could not be made). Resolves with the remote result; a remote Error arrives as Error(remote message).
   */
  async callPeer(id: bigint, op: string, body: unknown, timeoutMs: number): Promise<unknown> {
    if (this.closed) throw new Error('peer transport is closed');
    const peer = this.peers.get(id);
    if (peer === undefined) throw new Error(`unknown peer ${idLabel(id)}`);
    if (!/^[A-Za-z0-9_-]+$/.test(op)) throw new Error(`invalid leader call name ${JSON.stringify(op)}`);
    if (peer.urls.length === 0) throw new Error(`peer ${peer.label} has no usable URL`);
    const payload = Buffer.from(JSON.stringify(body ?? null), 'utf8');
    const deadline = Date.now() + timeoutMs;
    const failures: string[] = [];
    for (let i = 0; i < peer.urls.length; i++) {
      const url = peer.urls[(peer.urlIndex + i) % peer.urls.length];
      const left = deadline - Date.now();
      if (left <= 0) {
        failures.push('timed out');
        break;
      }
      let r: SimpleResponse;
      try {
        r = await simpleRequest({
          url,
          path: PATH_LEADER_PREFIX + op,
          method: 'POST',
          headers: { ...this.identityHeaders(id), 'Content-Type': 'application/json' },
          body: payload,
          timeoutMs: left,
          agent: this.agentFor(url),
          track: this.calls,
        });
      } catch (err) {
        if (this.closed) throw new Error('peer transport is closed');
        failures.push(`${url.origin}: ${errorMessage(err)}`);
        // Only a request that surely never arrived may go to the next URL: leader calls need not be idempotent.
        if (NOT_SENT_CODES.has((err as NodeJS.ErrnoException).code ?? '')) continue;
        break;
      }
      return interpretLeaderAnswer(r);
    }
    throw new Error(`leader call ${op} to peer ${peer.label} failed: ${failures.join('; ')}`);
  }

  // -------------------------------------------------------------------------------------------------
  // Receiving

  /** The node:http request handler for the peer port. */
  readonly handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    try {
      this.route(req, res);
    } catch (err) {
      this.log.error({ error: errorMessage(err), path: req.url }, 'peer request handler failed');
      reply(res, 500, 'internal error');
    }
  };

  private route(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.closed) {
      reply(res, 503, 'peer transport is closed');
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    const method = req.method ?? 'GET';
    const allow = (m: string): boolean => {
      if (method === m) return true;
      res.setHeader('Allow', m);
      reply(res, 405, 'Method Not Allowed');
      return false;
    };
    if (path === PATH_RAFT) {
      if (!allow('POST')) return;
      const from = this.checkPeerRequest(req, res);
      if (from !== undefined) this.receiveMessages(req, res, from);
    } else if (path === PATH_SNAPSHOT) {
      if (!allow('POST')) return;
      const from = this.checkPeerRequest(req, res);
      if (from !== undefined) this.receiveSnapshot(req, res, from);
    } else if (path === PATH_MEMBERS) {
      if (!allow('GET')) return;
      this.serveMembers(res);
    } else if (path === PATH_VERSION) {
      if (!allow('GET')) return;
      replyJson(res, 200, { etcdserver: this.opts.version, etcdcluster: CLUSTER_VERSION });
    } else if (path.startsWith(PATH_LEADER_PREFIX) && /^[A-Za-z0-9_-]+$/.test(path.slice(PATH_LEADER_PREFIX.length))) {
      if (!allow('POST')) return;
      const from = this.checkPeerRequest(req, res);
      if (from !== undefined) this.serveLeaderCall(req, res, path.slice(PATH_LEADER_PREFIX.length));
    } else {
      reply(res, 404, '404 page not found');
    }
  }

  /**
   * The checks every member-to-member request passes: sender id present, same cluster (unless ours is
   * still unknown), meant for this member, sender not removed. Returns the sender id, or undefined once
   * an error answer was sent.
   */
  private checkPeerRequest(req: http.IncomingMessage, res: http.ServerResponse): bigint | undefined {
    const from = parseHexId(req.headers[HEADER_FROM.toLowerCase()]);
    if (from === undefined) {
      reply(res, 400, `missing or invalid ${HEADER_FROM} header`);
      return undefined;
    }
    const local = this.opts.clusterId();
    const remote = req.headers[HEADER_CLUSTER_ID.toLowerCase()];
    if (local !== 0n && parseHexId(remote) !== local) {
      this.log.warn(
        {
          'local-member-id': this.localLabel,
          'local-member-cluster-id': local.toString(16),
          'local-member-server-version': this.opts.version,
          'remote-peer-id': idLabel(from),
          'remote-peer-server-version': req.headers[HEADER_VERSION.toLowerCase()],
          'remote-peer-cluster-id': remote,
        },
        'request cluster ID mismatch',
      );
      peerMetrics.receivedFailures.inc({ From: idLabel(from) });
      reply(res, 412, 'cluster ID mismatch');
      return undefined;
    }
    const to = req.headers[HEADER_TO.toLowerCase()];
    if (to !== undefined && this.localId !== 0n && parseHexId(to) !== this.localId) {
      this.log.warn({ 'local-member-id': this.localLabel, 'remote-peer-id': idLabel(from), 'request-to': to }, 'request meant for another member (stale peer URL?)');
      reply(res, 412, `request is meant for member ${String(to)}, this is ${this.localLabel}`);
      return undefined;
    }
    if (this.opts.isRemoved(from)) {
      this.log.warn({ 'local-member-id': this.localLabel, 'remote-peer-id': idLabel(from) }, 'rejected request from removed member');
      reply(res, 410, 'the member has been permanently removed from the cluster');
      return undefined;
    }
    return from;
  }

  private receiveMessages(req: http.IncomingMessage, res: http.ServerResponse, from: bigint): void {
    const fromLabel = idLabel(from);
    const limit = this.tuning.maxRaftBodyBytes;
    if (Number(req.headers['content-length'] ?? 0) > limit) {
      reply(res, 413, `raft message batch exceeds ${limit} bytes`);
      return;
    }
    const timer = setTimeout(() => req.destroy(new Error('request body timed out')), this.tuning.receiveTimeoutMs);
    readBody(req, limit).then(
      (buf) => {
        clearTimeout(timer);
        peerMetrics.receivedBytes.inc({ From: fromLabel }, buf.length);
        let msgs: Message[];
        try {
          msgs = decodeMessages(buf);
          if (msgs.some((m) => m.type === MessageType.Snap)) throw new Error(`MsgSnap must be sent to ${PATH_SNAPSHOT}`);
        } catch (err) {
          peerMetrics.receivedFailures.inc({ From: fromLabel });
          this.log.warn({ 'local-member-id': this.localLabel, 'remote-peer-id': fromLabel, error: errorMessage(err) }, 'failed to decode raft message');
          reply(res, 400, `failed to decode raft message: ${errorMessage(err)}`);
          return;
        }
        if (msgs.length > 0) {
          try {
            this.opts.onMessages(msgs);
          } catch (err) {
            this.log.error({ 'remote-peer-id': fromLabel, error: errorMessage(err) }, 'failed to process raft messages');
            reply(res, 500, 'failed to process raft messages');
            return;
          }
        }
        res.writeHead(204).end();
      },
      (err: Error) => {
        clearTimeout(timer);
        if (err instanceof BodyTooLargeError) {
          reply(res, 413, `raft message batch exceeds ${limit} bytes`);
          return;
        }
        peerMetrics.receivedFailures.inc({ From: fromLabel });
        this.log.debug({ 'remote-peer-id': fromLabel, error: err.message }, 'failed to read raft message batch');
        req.destroy();
      },
    );
  }

  private receiveSnapshot(req: http.IncomingMessage, res: http.ServerResponse, from: bigint): void {
    const fromLabel = idLabel(from);
    let msg: Message;
    try {
      const raw = req.headers[HEADER_SNAPSHOT_MESSAGE.toLowerCase()];
      if (typeof raw !== 'string' || raw === '') throw new Error(`missing ${HEADER_SNAPSHOT_MESSAGE} header`);
      const msgs = decodeMessages(Buffer.from(raw, 'base64'));
      if (msgs.length !== 1 || msgs[0].type !== MessageType.Snap || msgs[0].snapshot === undefined) throw new Error('the header must carry exactly one MsgSnap with snapshot metadata');
      msg = msgs[0];
    } catch (err) {
      peerMetrics.receivedFailures.inc({ From: fromLabel });
      this.log.warn({ 'local-member-id': this.localLabel, 'remote-peer-id': fromLabel, error: errorMessage(err) }, 'failed to decode snapshot message');
      reply(res, 400, `failed to decode snapshot message: ${errorMessage(err)}`);
      return;
    }
    const start = process.hrtime.bigint();
    const idleMs = this.tuning.snapshotIdleTimeoutMs;
    let bytes = 0;
    let idle: NodeJS.Timeout | undefined;
    const armIdle = () => {
      clearTimeout(idle);
      idle = setTimeout(() => req.destroy(new Error(`snapshot stream idle for ${idleMs} ms`)), idleMs);
    };
    // Counts the bytes and watches for a stalled sender; errors of the request (peer gone, idle timeout)
    // reach the consumer through pipeline as an error of this stream.
    const counter = new Transform({
      transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
        bytes += chunk.length;
        peerMetrics.receivedBytes.inc({ From: fromLabel }, chunk.length);
        armIdle();
        cb(null, chunk);
      },
      flush(cb: TransformCallback) {
        clearTimeout(idle);
        cb();
      },
    });
    pipeline(req, counter, () => clearTimeout(idle));
    armIdle();
    this.incoming.add(req);
    peerMetrics.snapshotReceiveInflights.inc({ From: fromLabel });
    this.log.info({ 'local-member-id': this.localLabel, 'remote-peer-id': fromLabel, 'snapshot-index': msg.snapshot?.metadata.index }, 'receiving database snapshot');

    let installing: Promise<void>;
    try {
      installing = Promise.resolve(this.opts.receiveSnapshot(msg, counter));
    } catch (err) {
      installing = Promise.reject(err);
    }
    installing.then(
      () => {
        const took = Number(process.hrtime.bigint() - start) / 1e9;
        peerMetrics.snapshotReceiveSuccess.inc({ From: fromLabel });
        peerMetrics.snapshotReceiveSeconds.observe({ From: fromLabel }, took);
        this.log.info({ 'remote-peer-id': fromLabel, 'snapshot-index': msg.snapshot?.metadata.index, bytes, took: `${took.toFixed(3)}s` }, 'received and saved database snapshot');
        // A consumer that stopped reading early: do not keep the connection for the rest of the body.
        if (!req.complete) res.setHeader('Connection', 'close');
        res.writeHead(204).end();
      },
      (err: unknown) => {
        peerMetrics.snapshotReceiveFailures.inc({ From: fromLabel });
        this.log.warn({ 'remote-peer-id': fromLabel, 'snapshot-index': msg.snapshot?.metadata.index, bytes, error: errorMessage(err) }, 'failed to receive database snapshot');
        reply(res, 500, `failed to receive snapshot: ${errorMessage(err)}`);
      },
    ).finally(() => {
      clearTimeout(idle);
      this.incoming.delete(req);
      peerMetrics.snapshotReceiveInflights.dec({ From: fromLabel });
    });
  }

  private serveMembers(res: http.ServerResponse): void {
    let json: string;
    try {
      json = JSON.stringify(this.opts.membersJson());
    } catch (err) {
      this.log.error({ error: errorMessage(err) }, 'failed to serialize the member list');
      reply(res, 500, 'failed to serialize the member list');
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json', [HEADER_CLUSTER_ID]: this.opts.clusterId().toString(16) });
    res.end(json);
  }

  private serveLeaderCall(req: http.IncomingMessage, res: http.ServerResponse, op: string): void {
    const timer = setTimeout(() => req.destroy(new Error('request body timed out')), this.tuning.receiveTimeoutMs);
    readBody(req, MAX_JSON_BYTES)
      .then(
        async (buf) => {
          clearTimeout(timer);
          let body: unknown;
          try {
            body = buf.length === 0 ? undefined : JSON.parse(buf.toString('utf8'));
          } catch (err) {
            replyJson(res, 400, { error: `invalid JSON body: ${errorMessage(err)}` });
            return;
          }
          let result: unknown;
          try {
            result = await this.opts.onLeaderCall(op, body);
          } catch (err) {
            replyJson(res, 500, { error: errorMessage(err) });
            return;
          }
          replyJson(res, 200, { result });
        },
        (err: Error) => {
          clearTimeout(timer);
          if (err instanceof BodyTooLargeError) reply(res, 413, err.message);
          else req.destroy();
        },
      )
      .catch((err: unknown) => {
        // replyJson throws for a result JSON cannot carry (e.g. a bigint)
        this.log.error({ op, error: errorMessage(err) }, 'failed to answer a leader call');
        if (!res.headersSent) replyJson(res, 500, { error: `cannot encode the result of ${op}: ${errorMessage(err)}` });
      });
  }

  // -------------------------------------------------------------------------------------------------

  /** Abort everything in flight (no callbacks fire afterwards) and release connections. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    clearInterval(this.probeTimer);
    for (const peer of this.peers.values()) this.stopPeer(peer);
    this.peers.clear();
    for (const req of this.calls) req.destroy(new Error('peer transport is closed'));
    this.calls.clear();
    for (const req of this.incoming) req.destroy(new Error('peer transport is closed'));
    this.incoming.clear();
    this.agent.destroy();
    this.tlsAgent.destroy();
    return Promise.resolve();
  }
}

function reply(res: http.ServerResponse, status: number, text: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // Close the connection after an error: the request body may not have been read.
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' });
  res.end(text + '\n');
}

function replyJson(res: http.ServerResponse, status: number, value: unknown): void {
  const json = JSON.stringify(value);
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(json);
}

function interpretLeaderAnswer(r: SimpleResponse): unknown {
  const text = r.body.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const obj = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : undefined;
  if (r.status === 200 && obj !== undefined) return obj.result;
  if (obj !== undefined && typeof obj.error === 'string') throw new Error(obj.error);
  throw new PeerHttpError(r.status, text.slice(0, MAX_ERROR_BODY));
}

/**
 * GET /members from the first of `peerUrls` that answers (each try bounded by timeoutMs): the member
 * list JSON and the cluster id from its X-Etcd-Cluster-ID header. Throws listing every URL's failure.
 */
export async function fetchClusterMembers(peerUrls: string[], timeoutMs: number, clientTls?: tls.SecureContextOptions): Promise<{ clusterId: bigint; members: unknown }> {
  const failures: string[] = [];
  for (const raw of peerUrls) {
    try {
      const r = await simpleRequest({ url: parsePeerUrl(raw), path: PATH_MEMBERS, method: 'GET', timeoutMs, agent: false, tls: clientTls });
      if (r.status !== 200) throw new PeerHttpError(r.status, r.body.toString('utf8').slice(0, MAX_ERROR_BODY));
      const clusterId = parseHexId(r.headers[HEADER_CLUSTER_ID.toLowerCase()]);
      if (clusterId === undefined) throw new Error(`missing or invalid ${HEADER_CLUSTER_ID} header`);
      return { clusterId, members: JSON.parse(r.body.toString('utf8')) as unknown };
    } catch (err) {
      failures.push(`${raw}: ${errorMessage(err)}`);
    }
  }
  throw new Error(`could not retrieve the cluster's member list from ${peerUrls.join(',') || '(no peer URLs)'}: ${failures.join('; ')}`);
}
