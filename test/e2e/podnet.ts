/**
 * Pod networking for the test kubelet: each pod gets its own network namespace, as a real pod
 * does, so that its processes can listen on 0.0.0.0 and well-known ports without clashing.
 *
 * One PodNetwork is one instance number N (0..255), claimed with an owner file under
 * /run/etcd-ts-test-kubelet/ so that several kubelets (parallel jest workers) never share
 * anything. Instance N has:
 * - a bridge `etsk<N>br` in the root namespace with 10.244.N.1/24;
 * - per pod, a namespace `etsk<N>-<k>` with lo up and `eth0` (one end of a veth pair whose other
 *   end, `etsk<N>v<k>`, is a port of the bridge) holding 10.244.N.<2..254>/24. Pods reach each
 *   other and the root namespace over the bridge; there is no default route, no NAT and no IP
 *   forwarding (nothing here routes anywhere but between the pods and this host);
 * - per pod, /etc/netns/<ns>/hosts, which `ip netns exec` bind-mounts over /etc/hosts for the
 *   pod's processes. It is rewritten in place (same inode) so the bind mount sees every update.
 *
 * Everything carries the `etsk` prefix. close() removes the pods' namespaces, the veths, the
 * bridge and the /etc/netns entries; init() first removes what a crashed earlier run left behind
 * (instances whose owner process is gone). Requires root and iproute2's `ip`.
 */
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

export const NET_PREFIX = 'etsk';
const STATE_DIR = '/run/etcd-ts-test-kubelet';
const NETNS_DIR = '/var/run/netns';
const ETC_NETNS = '/etc/netns';

/** Runs a command (bounded); resolves stdout, rejects with the command line and stderr. */
export function sh(cmd: string, args: string[], timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

/** Throws a clear error unless `ip` (iproute2) is there and this process may use it (root). */
export async function requirePodNetworking(): Promise<void> {
  try {
    await sh('ip', ['-V']);
  } catch {
    throw new Error(
      'the test kubelet needs the `ip` command of iproute2 to give each pod a network namespace; install it (Debian: apt-get install iproute2)',
    );
  }
  if (process.getuid?.() !== 0) throw new Error('the test kubelet needs root: it creates network namespaces, veth pairs and a bridge');
  const utilLinux: [string, string][] = [
    ['setpriv', 'to start pod processes as their user and with a parent-death signal'],
    ['unshare', "to give each container its own mount and UTS namespaces and root"],
    ['nsenter', 'to run commands in a container (exec)'],
    ['mount', "to mount each container's volumes at their mountPaths"],
  ];
  for (const [tool, why] of utilLinux) {
    try {
      await sh(tool, ['--version']);
    } catch {
      throw new Error(`the test kubelet needs \`${tool}\` (util-linux) ${why}`);
    }
  }
}

export interface PodSandbox {
  /** The network namespace (`ip netns exec <netns> ...`). */
  readonly netns: string;
  readonly ip: string;
  /** Host end of the veth pair. */
  readonly hostVeth: string;
  /** The /etc/hosts the pod's processes see. */
  readonly hostsFile: string;
}

interface Owner {
  pid: number;
  start: string;
  dir?: string;
}

/** Start time of a process (field 22 of /proc/<pid>/stat), to tell a live owner from a reused pid. */
function processStart(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function readOwner(n: number): Owner | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(STATE_DIR, `${n}.owner`), 'utf8')) as Owner;
  } catch {
    return undefined;
  }
}

const ownerAlive = (o: Owner | undefined): boolean => o !== undefined && processStart(o.pid) === o.start;

/** Instance numbers that appear in the names of existing namespaces, links and /etc/netns entries. */
async function instancesInUse(): Promise<Set<number>> {
  const found = new Set<number>();
  const add = (name: string) => {
    const m = new RegExp(`^${NET_PREFIX}(\\d+)`).exec(name);
    if (m) found.add(Number(m[1]));
  };
  for (const dir of [NETNS_DIR, ETC_NETNS]) {
    try {
      fs.readdirSync(dir).forEach(add);
    } catch {
      // no such dir
    }
  }
  for (const line of (await sh('ip', ['-o', 'link', 'show'])).split('\n')) {
    const m = /^\d+:\s+([^:@\s]+)/.exec(line);
    if (m) add(m[1]);
  }
  try {
    for (const f of fs.readdirSync(STATE_DIR)) {
      const m = /^(\d+)\.owner$/.exec(f);
      if (m) found.add(Number(m[1]));
    }
  } catch {
    // no state dir yet
  }
  return found;
}

/** Removes everything of instance n: its pods' processes and namespaces, veths, bridge, /etc/netns entries. */
async function removeInstance(n: number, removeDirOfOwner: boolean): Promise<void> {
  const prefix = `${NET_PREFIX}${n}`;
  const owner = readOwner(n);
  let namespaces: string[] = [];
  try {
    namespaces = fs.readdirSync(NETNS_DIR).filter((f) => f.startsWith(`${prefix}-`));
  } catch {
    // none
  }
  for (const ns of namespaces) {
    const pids = await sh('ip', ['netns', 'pids', ns]).catch(() => '');
    for (const p of pids.split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(p), 'SIGKILL');
      } catch {
        // gone
      }
    }
    await sh('ip', ['netns', 'del', ns]).catch(() => undefined);
  }
  const links = (await sh('ip', ['-o', 'link', 'show']))
    .split('\n')
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1])
    .filter((l): l is string => l !== undefined && new RegExp(`^${prefix}[a-z]`).test(l));
  for (const l of links) await sh('ip', ['link', 'del', l]).catch(() => undefined);
  try {
    for (const e of fs.readdirSync(ETC_NETNS)) if (e.startsWith(`${prefix}-`)) fs.rmSync(path.join(ETC_NETNS, e), { recursive: true, force: true });
  } catch {
    // no /etc/netns
  }
  if (removeDirOfOwner && owner?.dir && path.basename(owner.dir).startsWith('etcd-ts-kubelet-') && process.env.ETCD_TS_KEEP_TMP !== '1') {
    fs.rmSync(owner.dir, { recursive: true, force: true });
  }
  fs.rmSync(path.join(STATE_DIR, `${n}.owner`), { force: true });
}

export class PodNetwork {
  private instance = -1;
  private nextHost = 2;
  private nextIndex = 0;
  private readonly used = new Map<number, PodSandbox>();

  /** The bridge's address: the node's address as pods see it. */
  get gateway(): string {
    return `10.244.${this.instance}.1`;
  }
  get bridge(): string {
    return `${NET_PREFIX}${this.instance}br`;
  }
  get subnet(): string {
    return `10.244.${this.instance}.0/24`;
  }

  /**
   * Claims a free instance (cleaning up leftovers of dead owners first), creates its bridge.
   * `dir` (the kubelet's temp dir) is recorded so that a later run can remove it if this one crashes.
   */
  async init(dir?: string): Promise<void> {
    await requirePodNetworking();
    fs.mkdirSync(STATE_DIR, { recursive: true });
    for (const n of await instancesInUse()) {
      if (!ownerAlive(readOwner(n))) await removeInstance(n, true);
    }
    const routes = await sh('ip', ['-4', 'route', 'show']);
    const me: Owner = { pid: process.pid, start: processStart(process.pid) ?? '', dir };
    for (let n = 0; n < 256; n++) {
      if (routes.includes(`10.244.${n}.`)) continue;
      try {
        fs.writeFileSync(path.join(STATE_DIR, `${n}.owner`), JSON.stringify(me), { flag: 'wx' });
      } catch {
        continue;
      }
      this.instance = n;
      break;
    }
    if (this.instance < 0) throw new Error('PodNetwork: no free 10.244.N.0/24 (N = 0..255) for the test kubelet');
    try {
      await sh('ip', ['link', 'add', this.bridge, 'type', 'bridge']);
      await sh('ip', ['addr', 'add', `${this.gateway}/24`, 'dev', this.bridge]);
      await sh('ip', ['link', 'set', this.bridge, 'up']);
    } catch (e) {
      await removeInstance(this.instance, false);
      throw e;
    }
  }

  /** A network namespace with an address on the bridge, lo up, and an empty hosts file. */
  async add(): Promise<PodSandbox> {
    if (this.instance < 0) throw new Error('PodNetwork.add before init');
    let host = -1;
    for (let i = 0; i < 253; i++) {
      const h = ((this.nextHost - 2 + i) % 253) + 2;
      if (!this.used.has(h)) {
        host = h;
        break;
      }
    }
    if (host < 0) throw new Error(`PodNetwork: no free address in ${this.subnet}`);
    this.nextHost = host + 1;
    const k = this.nextIndex++;
    const netns = `${NET_PREFIX}${this.instance}-${k}`;
    const sandbox: PodSandbox = {
      netns,
      ip: `10.244.${this.instance}.${host}`,
      hostVeth: `${NET_PREFIX}${this.instance}v${k}`,
      hostsFile: path.join(ETC_NETNS, netns, 'hosts'),
    };
    this.used.set(host, sandbox);
    try {
      fs.mkdirSync(path.dirname(sandbox.hostsFile), { recursive: true });
      fs.writeFileSync(sandbox.hostsFile, '127.0.0.1\tlocalhost\n');
      await sh('ip', ['netns', 'add', netns]);
      await sh('ip', ['link', 'add', sandbox.hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
      await sh('ip', ['link', 'set', sandbox.hostVeth, 'master', this.bridge]);
      await sh('ip', ['link', 'set', sandbox.hostVeth, 'up']);
      await sh('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
      await sh('ip', ['-n', netns, 'addr', 'add', `${sandbox.ip}/24`, 'dev', 'eth0']);
      await sh('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
    } catch (e) {
      await this.remove(sandbox);
      throw e;
    }
    return sandbox;
  }

  /** Kills what still runs in the namespace, deletes it, its veth and its /etc/netns entry. */
  async remove(sandbox: PodSandbox): Promise<void> {
    const pids = await sh('ip', ['netns', 'pids', sandbox.netns]).catch(() => '');
    for (const p of pids.split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(p), 'SIGKILL');
      } catch {
        // gone
      }
    }
    await sh('ip', ['netns', 'del', sandbox.netns]).catch(() => undefined);
    await sh('ip', ['link', 'del', sandbox.hostVeth]).catch(() => undefined);
    fs.rmSync(path.dirname(sandbox.hostsFile), { recursive: true, force: true });
    for (const [h, s] of this.used) if (s === sandbox) this.used.delete(h);
  }

  /** Rewrites the pod's hosts file in place (the bind mount of running processes keeps its inode). */
  writeHosts(sandbox: PodSandbox, content: string): void {
    try {
      if (fs.readFileSync(sandbox.hostsFile, 'utf8') === content) return;
    } catch {
      return; // the sandbox is gone
    }
    const fd = fs.openSync(sandbox.hostsFile, 'r+');
    try {
      const buf = Buffer.from(content);
      fs.writeSync(fd, buf, 0, buf.length, 0);
      fs.ftruncateSync(fd, buf.length);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** The argv prefix that runs a command in the pod's namespace (with its /etc/hosts). */
  execPrefix(sandbox: PodSandbox): string[] {
    return ['ip', 'netns', 'exec', sandbox.netns];
  }

  /** Removes every sandbox, the bridge, and releases the instance. */
  async close(): Promise<void> {
    if (this.instance < 0) return;
    for (const s of [...this.used.values()]) await this.remove(s);
    await removeInstance(this.instance, false);
    this.instance = -1;
  }

  /** Names of this instance's namespaces and links that exist right now (for tests of the cleanup). */
  static async leftovers(instance: number): Promise<string[]> {
    const prefix = `${NET_PREFIX}${instance}`;
    const out: string[] = [];
    try {
      out.push(...fs.readdirSync(NETNS_DIR).filter((f) => f.startsWith(`${prefix}-`)));
    } catch {
      // none
    }
    for (const line of (await sh('ip', ['-o', 'link', 'show'])).split('\n')) {
      const m = /^\d+:\s+([^:@\s]+)/.exec(line);
      if (m && new RegExp(`^${prefix}[a-z]`).test(m[1])) out.push(m[1]);
    }
    try {
      out.push(...fs.readdirSync(ETC_NETNS).filter((f) => f.startsWith(`${prefix}-`)).map((f) => `${ETC_NETNS}/${f}`));
    } catch {
      // none
    }
    return out;
  }

  get instanceNumber(): number {
    return this.instance;
  }
}
