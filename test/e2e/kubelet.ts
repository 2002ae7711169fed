/**
 * A TEST kubelet: it lets a real control plane (test/helpers/kube.ts) run Pods on this machine
 * without a container runtime, for the operator's end-to-end tests. It is not a kubelet to run
 * anything else with, and it is no container runtime: there are no images and no cgroups; a
 * container is a local process in its own network, mount and UTS namespaces (no user or PID namespace).
 *
 * What it does, as a kubelet does:
 * - registers a Node (Ready, capacity cpu/memory/pods/ephemeral-storage, InternalIP = its bridge
 *   address, Hostname) and renews its Lease in kube-node-lease every 10 s, so the node-lifecycle
 *   controller neither taints nor evicts; the Node's Ready heartbeat is refreshed every minute;
 * - list+watches the Pods with spec.nodeName = its node (the real scheduler binds them) and runs
 *   each container as a local process. The only image is `etcd-ts` (any tag, any registry path
 *   ending in /etcd-ts), with two executables: `etcd-ts` (the default entrypoint) is
 *   `node /etcd-ts-image/dist/src/bin/etcd-ts.js`, `etcd-ts-operator` is
 *   `node /etcd-ts-image/dist/operator/main.js`, where /etcd-ts-image is this repository mounted
 *   read-only in the container (IMAGE_ROOT), so no volume of the pod can hide it.
 *   Any other image leaves the container waiting with ErrImagePull / ImagePullBackOff and the
 *   message "the test kubelet runs only ...", as an image that cannot be pulled does;
 * - command/args with $(VAR) expansion as Kubernetes does it; env from value, fieldRef
 *   (metadata.name/namespace/uid/labels/annotations, spec.nodeName, spec.serviceAccountName,
 *   status.podIP(s), status.hostIP(s)), configMapKeyRef, secretKeyRef, envFrom; workingDir;
 *   securityContext runAsUser/runAsGroup/fsGroup/supplementalGroups/runAsNonRoot/
 *   allowPrivilegeEscalation=false (through setpriv), readOnlyRootFilesystem (every mount of the
 *   container's root read-only but its volumes, /etc/hosts, /dev, /proc and /sys). The process
 *   environment is only PATH, HOSTNAME, HOME, the `kubernetes` Service's variables
 *   (KUBERNETES_SERVICE_HOST/PORT, ...) and the container's env: nothing leaks from the test's
 *   environment;
 * - networking: each pod runs in its own network namespace with its own IP (podnet.ts); the
 *   process starts under `ip netns exec`, so it listens on 0.0.0.0 like a real pod. Each pod's
 *   /etc/hosts holds what cluster DNS would answer for pods: for every ready endpoint (with
 *   publishNotReadyAddresses, every endpoint) of a headless Service that has a hostname (pods
 *   with hostname + subdomain, e.g. StatefulSet pods), `<hostname>.<svc>.<ns>.svc.cluster.local`
 *   and, standing in for the search path, `<hostname>.<svc>.<ns>.svc`. The records come from the
 *   EndpointSlices the control plane's endpointslice controller writes, so a Service or pod that
 *   cluster DNS would not resolve does not resolve here either. The hostname (UTS namespace) is
 *   the pod's hostname or name;
 * - the API server for in-cluster clients: KUBERNETES_SERVICE_HOST/PORT point at this node's bridge
 *   address, port 443, where the kubelet forwards TCP to kube-apiserver (a stand-in for kube-proxy and
 *   the `kubernetes` Service's ClusterIP, which nothing routes here; the serving certificate names
 *   that address, so clients verify it with the service account's ca.crt); see apiServiceAddress;
 * - volumes: PersistentVolumeClaims are provisioned as a local-path provisioner does (a
 *   PersistentVolume with a hostPath under the kubelet's temp dir, node affinity to this node and
 *   a claimRef to the claim, which the control plane's PV controller then binds; Released ones
 *   are deleted with their directory); emptyDir is a directory; configMap, secret, downwardAPI
 *   and projected volumes (service account tokens from the TokenRequest API, as the API server's
 *   ServiceAccount admission adds them at /var/run/secrets/kubernetes.io/serviceaccount) are
 *   written as files and rewritten from the API every 10 s (not atomically, unlike the kubelet's
 *   ..data swap); hostPath is the host's path;
 * - mounts: each container's root is this machine's / seen through a tmpfs in the container's own
 *   mount namespace (containerRootScript), with each volumeMount (subPath, readOnly) bind-mounted at
 *   its mountPath; directories a mountPath needs are made in that namespace only, so nothing is
 *   left on this machine's filesystem. The processes otherwise see this machine's files (the
 *   "image" is this machine, plus this repository at /etcd-ts-image);
 * - probes: httpGet (HTTP/HTTPS) and tcpSocket startup/liveness/readiness probes against the pod
 *   IP, with initialDelaySeconds, periodSeconds, timeoutSeconds, successThreshold and
 *   failureThreshold; liveness and readiness start once the startup probe succeeded; a failed
 *   liveness or startup probe restarts the container;
 * - restartPolicy (Always/OnFailure/Never) with the kubelet's crash back-off (immediate first
 *   restart, then 10 s doubling to 5 min, reset after 10 min of running) and CrashLoopBackOff;
 * - pod status: phase, podIP(s), hostIP(s), startTime, conditions (PodReadyToStartContainers,
 *   Initialized, ContainersReady, Ready; PodScheduled and others kept), containerStatuses with
 *   ready/started/restartCount/state/lastState;
 * - deletion: on deletionTimestamp SIGTERM, the grace period, SIGKILL, the terminal phase, then
 *   the delete with gracePeriodSeconds=0 (uid precondition) that removes the pod;
 * - logs: each container's stdout+stderr to a file per pod, container and restart
 *   (containerLog(), logTails()); Events for image, volume, probe and kill problems; exec() runs a
 *   command in a container's namespaces and root, as `kubectl exec` does.
 *
 * What it does not do: images (only the mapping above), init containers and sidecars (such a pod
 * is refused with a clear message), exec and grpc probes and lifecycle hooks (refused likewise),
 * resource limits and requests enforcement, emptyDir sizeLimit and medium Memory. These are accepted
 * and ignored (the process runs as if they were not set): capabilities (a non-root process has none
 * anyway; a root one keeps all), seccompProfile, appArmorProfile. No user or PID namespaces, no Service ClusterIPs (no kube-proxy: only pod IPs,
 * the /etc/hosts names above and the `kubernetes` Service stand-in work), no Service environment
 * variables other than the `kubernetes` Service's, no kubelet API (no `kubectl logs/exec`; use
 * containerLog() and exec()), no eviction, no static pods. It talks to kube-apiserver with the
 * kubeconfig's client certificate (the admin's in the tests), not as system:node:<name>.
 *
 * Requires root, iproute2 (`ip`) and util-linux (`unshare`, `nsenter`, `setpriv`, `mount`); setpriv
 * starts each process with PR_SET_PDEATHSIG=SIGKILL, so no pod process outlives the test process.
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as https from 'https';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { K8S_VERSION } from '../helpers/kube';
import { RunOptions, RunResult, etcdTsBin, repoRoot, run } from '../helpers/procs';
import { ApiError, Informer, KubeApi, KubeObject, ObjectMeta } from './kubeapi';
import { PodNetwork, PodSandbox } from './podnet';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** RFC 3339 in seconds, as Kubernetes writes metav1.Time. */
const now3339 = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
/** metav1.MicroTime. */
const nowMicro = () => new Date().toISOString().replace(/Z$/, '000Z');

export const PROVISIONER_NAME = 'etcd-ts.io/test-kubelet';
/** The `kubernetes` Service's port (kube-apiserver's default Service port). */
const API_SERVICE_PORT = 443;
const LOG_TAIL_LINES = 400;

// ---------------------------------------------------------------------------------------------------------
// The parts of the API objects this kubelet reads and writes (JSON as the API server sends it).

interface KeyRef {
  name: string;
  key: string;
  optional?: boolean;
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    fieldRef?: { fieldPath: string };
    configMapKeyRef?: KeyRef;
    secretKeyRef?: KeyRef;
    resourceFieldRef?: unknown;
    fileKeyRef?: unknown;
  };
}
interface EnvFrom {
  prefix?: string;
  configMapRef?: { name: string; optional?: boolean };
  secretRef?: { name: string; optional?: boolean };
}
interface Probe {
  httpGet?: { path?: string; port: number | string; host?: string; scheme?: string; httpHeaders?: { name: string; value: string }[] };
  tcpSocket?: { port: number | string; host?: string };
  exec?: unknown;
  grpc?: unknown;
  initialDelaySeconds?: number;
  periodSeconds?: number;
  timeoutSeconds?: number;
  successThreshold?: number;
  failureThreshold?: number;
}
interface SecurityContext {
  readOnlyRootFilesystem?: boolean;
  runAsUser?: number;
  runAsGroup?: number;
  runAsNonRoot?: boolean;
  allowPrivilegeEscalation?: boolean;
  fsGroup?: number;
  supplementalGroups?: number[];
}
interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  workingDir?: string;
  env?: EnvVar[];
  envFrom?: EnvFrom[];
  ports?: { name?: string; containerPort: number }[];
  volumeMounts?: { name: string; mountPath: string; subPath?: string; readOnly?: boolean }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  lifecycle?: unknown;
  securityContext?: SecurityContext;
}
interface KeyToPath {
  key: string;
  path: string;
  mode?: number;
}
interface DownwardItem {
  path: string;
  fieldRef?: { fieldPath: string };
  resourceFieldRef?: unknown;
  mode?: number;
}
interface Volume {
  name: string;
  emptyDir?: { medium?: string };
  hostPath?: { path: string; type?: string };
  persistentVolumeClaim?: { claimName: string; readOnly?: boolean };
  configMap?: { name: string; items?: KeyToPath[]; defaultMode?: number; optional?: boolean };
  secret?: { secretName: string; items?: KeyToPath[]; defaultMode?: number; optional?: boolean };
  downwardAPI?: { items?: DownwardItem[]; defaultMode?: number };
  projected?: {
    defaultMode?: number;
    sources: {
      configMap?: { name: string; items?: KeyToPath[]; optional?: boolean };
      secret?: { name: string; items?: KeyToPath[]; optional?: boolean };
      downwardAPI?: { items?: DownwardItem[] };
      serviceAccountToken?: { path: string; audience?: string; expirationSeconds?: number };
    }[];
  };
  [other: string]: unknown;
}
interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  lastProbeTime?: string | null;
  observedGeneration?: number;
}
interface ContainerState {
  running?: { startedAt: string };
  waiting?: { reason: string; message?: string };
  terminated?: { exitCode: number; signal?: number; reason: string; message?: string; startedAt?: string; finishedAt: string; containerID?: string };
}
export interface Pod extends KubeObject {
  spec: {
    nodeName?: string;
    hostname?: string;
    subdomain?: string;
    hostNetwork?: boolean;
    serviceAccountName?: string;
    restartPolicy?: 'Always' | 'OnFailure' | 'Never';
    terminationGracePeriodSeconds?: number;
    containers: Container[];
    initContainers?: Container[];
    ephemeralContainers?: Container[];
    volumes?: Volume[];
    securityContext?: SecurityContext;
  };
  status?: {
    phase?: string;
    conditions?: Condition[];
    podIP?: string;
    qosClass?: string;
    [k: string]: unknown;
  };
}
interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
  binaryData?: Record<string, string>;
}
interface Secret extends KubeObject {
  data?: Record<string, string>;
}
interface Pvc extends KubeObject {
  spec: { accessModes?: string[]; resources?: { requests?: { storage?: string } }; storageClassName?: string; volumeName?: string; volumeMode?: string };
  status?: { phase?: string };
}
interface Pv extends KubeObject {
  spec: { hostPath?: { path: string }; local?: { path: string }; claimRef?: { namespace: string; name: string; uid?: string } };
  status?: { phase?: string };
}
interface EndpointSlice extends KubeObject {
  endpoints?: { addresses: string[]; hostname?: string; conditions?: { ready?: boolean } }[];
}

/** Why a container cannot start yet (the waiting reason Kubernetes shows). */
class ContainerError extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Pure helpers

/**
 * Kubernetes' $(VAR) expansion (k8s.io/kubernetes/third_party/forked/golang/expansion): $(NAME) is
 * replaced when NAME is defined and left as it is otherwise; $$ is an escaped $.
 */
export function expandVars(input: string, vars: ReadonlyMap<string, string>): string {
  let out = '';
  for (let i = 0; i < input.length; i++) {
    const ch = input[i];
    if (ch !== '$' || i + 1 >= input.length) {
      out += ch;
      continue;
    }
    const next = input[i + 1];
    if (next === '$') {
      out += '$';
      i++;
    } else if (next === '(') {
      const close = input.indexOf(')', i + 2);
      if (close < 0) {
        out += input.slice(i);
        break;
      }
      const name = input.slice(i + 2, close);
      const value = vars.get(name);
      out += value !== undefined ? value : `$(${name})`;
      i = close;
    } else {
      out += ch + next;
      i++;
    }
  }
  return out;
}

/**
 * The executables of the one image the test kubelet runs (the etcd-ts image: one npm package, two
 * programs), as files of this repository's build run with this node.
 */
export const IMAGE_EXECUTABLES: Readonly<Record<string, readonly string[]>> = {
  'etcd-ts': ['dist', 'src', 'bin', 'etcd-ts.js'],
  'etcd-ts-operator': ['dist', 'operator', 'main.js'],
};

/**
 * Where a container sees this repository, read-only: the image's files. A fixed path of its own rather than
 * the repository's path on this machine, which a volume could hide (a checkout under /tmp and the members'
 * emptyDir at /tmp).
 */
export const IMAGE_ROOT = '/etcd-ts-image';

/**
 * The container path of an image executable; throws (not a container error: the test setup is wrong) when
 * its built file is missing here.
 */
function builtExecutable(name: string): string {
  const file = name === 'etcd-ts' ? etcdTsBin() : path.join(repoRoot(), ...IMAGE_EXECUTABLES[name]);
  if (!fs.existsSync(file)) throw new Error(`${name} is not built: ${file} is missing. Run \`npm run build\` first.`);
  return path.posix.join(IMAGE_ROOT, ...IMAGE_EXECUTABLES[name]);
}

/** The entrypoint of an image, or a ContainerError (the test kubelet has one image, with the executables above). */
export function imageEntrypoint(image: string | undefined, command: string[] | undefined): string[] {
  const ref = (image ?? '').split('@')[0];
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  const repository = colon > slash ? ref.slice(0, colon) : ref;
  const files = Object.entries(IMAGE_EXECUTABLES).map(([name, f]) => `${name} = node ${path.join(...f)}`);
  if (repository !== 'etcd-ts' && !repository.endsWith('/etcd-ts')) {
    throw new ContainerError(
      'ErrImagePull',
      `image "${image}": the test kubelet runs only the etcd-ts image (repository etcd-ts, any tag), whose executables are ${files.join(', ')} of this repository`,
    );
  }
  // The image's default entrypoint is etcd-ts; a container's `command` replaces it.
  const entry = command && command.length > 0 ? command : ['etcd-ts'];
  const name = path.basename(entry[0]);
  if (!(name in IMAGE_EXECUTABLES)) {
    throw new ContainerError(
      'RunContainerError',
      `exec: "${entry[0]}": executable file not found in $PATH (the test kubelet's etcd-ts image has only ${Object.keys(IMAGE_EXECUTABLES).join(' and ')})`,
    );
  }
  return [process.execPath, builtExecutable(name), ...entry.slice(1)];
}

/** A volumeMount as the test kubelet makes it: `source` (a host path) bind-mounted at `mountPath` in the container. */
export interface ContainerMount {
  mountPath: string;
  source: string;
  readOnly: boolean;
}

/** Single-quotes a word for sh. */
const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * The sh script that builds a container's root directory `root` (an empty host directory) inside the
 * container's own mount namespace and then runs "$@" chrooted into it (`unshare --root --wd`), as a
 * container runtime pivots into an image's root filesystem. The root is a tmpfs holding every top-level
 * entry of this machine's / (bind-mounted back: the "image" is this machine), and each volume is
 * bind-mounted at its mountPath (read-only when asked). A mountPath whose directories do not exist here is
 * made without touching this machine's filesystem: the deepest existing directory on its way is replaced,
 * in the container's namespace only, by a tmpfs into which its entries are bind-mounted back, and the
 * missing directories are made in that tmpfs. Inside an earlier volume the missing directories are made in
 * the volume (as runc does). Everything disappears with the mount namespace when the container's last
 * process exits.
 */
export function containerRootScript(root: string, mounts: readonly ContainerMount[], wd: string, readOnlyRoot = false, imageSource?: string): string {
  const lines = [
    'set -e',
    // mirror SRC DST: a tmpfs at DST with SRC's mode and owner, holding SRC's entries bind-mounted back.
    'mirror() {',
    '  mount -t tmpfs -o "mode=$(stat -c %a "$1"),uid=$(stat -c %u "$1"),gid=$(stat -c %g "$1")" etsk-container "$2"',
    '  for e in "$1"/* "$1"/.[!.]* "$1"/..?*; do',
    '    [ -e "$e" ] || [ -L "$e" ] || continue',
    '    n="$2/${e##*/}"',
    '    if [ -L "$e" ]; then ln -s "$(readlink "$e")" "$n"',
    '    elif [ -d "$e" ]; then mkdir "$n" && mount --rbind "$e" "$n"',
    '    else : > "$n" && mount --bind "$e" "$n"; fi',
    '  done',
    '}',
    `mirror / ${shq(root)}`,
  ];
  if (imageSource !== undefined) {
    // The image's files at IMAGE_ROOT (a directory made in the root's tmpfs), read-only as an image layer.
    const target = shq(root + IMAGE_ROOT);
    lines.push(`mkdir -p ${target}`, `mount --bind ${shq(imageSource)} ${target}`, `mount -o remount,bind,ro ${target}`);
  }
  /** Directories (container paths) that live on a tmpfs made here: making entries in them touches nothing outside. */
  const ownDirs = new Set<string>(['/']);
  const volumes: { target: string; source: string }[] = [];
  const volumeOf = (p: string) =>
    volumes.filter((v) => p === v.target || p.startsWith(v.target + '/')).sort((a, b) => b.target.length - a.target.length)[0];
  /** Where a container path is on this machine (before the volumes are mounted, the same path). */
  const hostPathOf = (p: string) => {
    const v = volumeOf(p);
    return v ? v.source + p.slice(v.target.length) : p;
  };
  const kindOf = (p: string): 'dir' | 'file' | 'link' | undefined => {
    if (ownDirs.has(p)) return 'dir';
    try {
      const st = fs.lstatSync(hostPathOf(p));
      return st.isSymbolicLink() ? 'link' : st.isDirectory() ? 'dir' : 'file';
    } catch {
      return undefined;
    }
  };
  const sorted = [...mounts].sort((a, b) => a.mountPath.split('/').length - b.mountPath.split('/').length);
  for (const m of sorted) {
    if (!path.isAbsolute(m.mountPath)) throw new ContainerError('CreateContainerConfigError', `mountPath ${JSON.stringify(m.mountPath)} is not absolute`);
    const sourceIsDir = fs.statSync(m.source).isDirectory();
    // Walk the mountPath as the container sees it, following symlinks (e.g. /var/run -> /run).
    let rest = m.mountPath.split('/').filter((c) => c !== '' && c !== '.');
    let dir = '/';
    for (let hops = 0; rest.length > 0; ) {
      const next = path.posix.join(dir, rest[0]);
      const kind = rest[0] === '..' ? 'dir' : kindOf(next);
      if (kind === undefined) break;
      if (kind === 'link') {
        if (++hops > 40 || volumeOf(next)) throw new ContainerError('CreateContainerConfigError', `mountPath ${m.mountPath}: cannot follow the symlink ${next}`);
        const link = fs.readlinkSync(next);
        rest = [...(path.posix.isAbsolute(link) ? link : path.posix.join(dir, link)).split('/').filter((c) => c !== ''), ...rest.slice(1)];
        dir = '/';
        continue;
      }
      if (kind === 'file' && rest.length > 1) throw new ContainerError('CreateContainerConfigError', `mountPath ${m.mountPath}: ${next} is not a directory`);
      dir = rest[0] === '..' ? path.posix.dirname(dir) : next;
      rest = rest.slice(1);
    }
    const target = path.posix.join(dir, ...rest);
    if (rest.length === 0 && (kindOf(target) === 'dir') !== sourceIsDir) {
      throw new ContainerError('CreateContainerConfigError', `mountPath ${m.mountPath}: cannot mount a ${sourceIsDir ? 'directory' : 'file'} over a ${sourceIsDir ? 'file' : 'directory'}`);
    }
    if (rest.length > 0) {
      const missing = rest.map((_, i) => path.posix.join(dir, ...rest.slice(0, i + 1)));
      const dirs = sourceIsDir ? missing : missing.slice(0, -1);
      if (volumeOf(dir) && !ownDirs.has(dir)) {
        // Inside an earlier volume: made in the volume itself.
        for (const d of dirs) fs.mkdirSync(hostPathOf(d), { recursive: true });
        if (!sourceIsDir) fs.closeSync(fs.openSync(hostPathOf(target), 'a'));
      } else {
        if (!ownDirs.has(dir)) {
          lines.push(`mirror ${shq(dir)} ${shq(root + dir)}`);
          ownDirs.add(dir);
        }
        for (const d of dirs) {
          lines.push(`mkdir ${shq(root + d)}`);
          ownDirs.add(d);
        }
        if (!sourceIsDir) lines.push(`: > ${shq(root + target)}`);
      }
    }
    lines.push(`mount --bind ${shq(m.source)} ${shq(root + target)}`);
    if (m.readOnly) lines.push(`mount -o remount,bind,ro ${shq(root + target)}`);
    volumes.push({ target, source: m.source });
  }
  if (readOnlyRoot) {
    // readOnlyRootFilesystem: every mount of the root read-only (each bind separately: a remount is per
    // mount), except the volumes, /etc/hosts (the kubelet's) and /dev, /proc, /sys (the runtime's own).
    const keep = [...volumes.map((v) => v.target), '/dev', '/proc', '/sys', '/etc/hosts'].flatMap((t) => [shq(root + t), `${shq(root + t)}/*`]);
    lines.push(
      'while IFS=" " read -r _ _ _ _ m _; do',
      `  case "$m" in ${shq(root)}|${shq(root)}/*) ;; *) continue ;; esac`,
      `  case "$m" in *\\\\*) echo "readOnlyRootFilesystem: cannot remount $m (a path with a space or a special character)" >&2; exit 1 ;; esac`,
      `  case "$m" in ${keep.join('|')}) continue ;; esac`,
      '  mount -o remount,bind,ro "$m"',
      'done < /proc/self/mountinfo',
    );
  }
  lines.push(`exec unshare --root=${shq(root)} --wd=${shq(wd)} "$@"`);
  return lines.join('\n') + '\n';
}

function probeDefaults(p: Probe) {
  return {
    initialDelayMs: (p.initialDelaySeconds ?? 0) * 1000,
    periodMs: Math.max(1, p.periodSeconds ?? 10) * 1000,
    timeoutMs: Math.max(1, p.timeoutSeconds ?? 1) * 1000,
    successThreshold: Math.max(1, p.successThreshold ?? 1),
    failureThreshold: Math.max(1, p.failureThreshold ?? 3),
  };
}

function resolvePort(port: number | string, c: Container): number {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  const found = c.ports?.find((p) => p.name === port);
  if (!found) throw new Error(`port "${port}" is not a named port of container ${c.name}`);
  return found.containerPort;
}

/** One probe; resolves with a failure message, or undefined on success. */
function runProbe(p: Probe, c: Container, podIP: string, timeoutMs: number): Promise<string | undefined> {
  if (p.httpGet) {
    const g = p.httpGet;
    const host = g.host || podIP;
    const port = resolvePort(g.port, c);
    const lib = (g.scheme ?? 'HTTP').toUpperCase() === 'HTTPS' ? https : http;
    const headers: Record<string, string> = { 'User-Agent': `kube-probe/${K8S_VERSION.split('.').slice(0, 2).join('.')}`, Accept: '*/*' };
    for (const h of g.httpHeaders ?? []) headers[h.name] = h.value;
    return new Promise((resolve) => {
      const req = lib.request(
        { host, port, path: g.path || '/', method: 'GET', agent: false, timeout: timeoutMs, headers, rejectUnauthorized: false },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (d: Buffer) => chunks.push(d));
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 400) resolve(undefined);
            else resolve(`HTTP probe failed with statuscode: ${status}: ${Buffer.concat(chunks).toString('utf8').slice(0, 200)}`);
          });
          res.on('error', (e) => resolve(e.message));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`Get "http://${host}:${port}${g.path ?? '/'}": context deadline exceeded (timeout ${timeoutMs} ms)`)));
      req.on('error', (e) => resolve(e.message));
      req.end();
    });
  }
  if (p.tcpSocket) {
    const host = p.tcpSocket.host || podIP;
    const port = resolvePort(p.tcpSocket.port, c);
    return new Promise((resolve) => {
      const sock = net.connect({ host, port, timeout: timeoutMs });
      sock.once('connect', () => {
        sock.destroy();
        resolve(undefined);
      });
      sock.once('timeout', () => {
        sock.destroy();
        resolve(`dial tcp ${host}:${port}: i/o timeout`);
      });
      sock.once('error', (e) => resolve(e.message));
    });
  }
  return Promise.resolve('unsupported probe');
}

const signalNumber = (s: NodeJS.Signals | null): number | undefined => (s ? os.constants.signals[s] : undefined);

// ---------------------------------------------------------------------------------------------------------
// Containers and pods

type ProbeKind = 'startup' | 'liveness' | 'readiness';

class ContainerRun {
  proc: ChildProcess | undefined;
  running = false;
  startedAt: string | undefined;
  startedMs = 0;
  started = false;
  ready = false;
  /** Starts so far (restartCount = starts - 1). */
  starts = 0;
  crashes = 0;
  nextStartAt = 0;
  backoffMs = 0;
  /** After its exit: whether the restart policy restarts it. */
  willRestart = false;
  waiting: { reason: string; message?: string } = { reason: 'ContainerCreating' };
  terminated: ContainerState['terminated'];
  lastTerminated: ContainerState['terminated'];
  exited: Promise<void> = Promise.resolve();
  /** Why the kubelet is killing it (set before the signal), for the terminated state and events. */
  killReason: string | undefined;
  probeTimers: NodeJS.Timeout[] = [];
  probeGeneration = 0;
  containerID = '';

  constructor(readonly spec: Container) {}

  get name(): string {
    return this.spec.name;
  }
}

interface VolumeDir {
  hostDir: string;
  /** Files this kubelet wrote into it (configMap, secret, downwardAPI, projected), for refreshes. */
  files?: Set<string>;
}

class PodWorker {
  pod: Pod;
  sandbox: PodSandbox | undefined;
  hostIP = '';
  readonly containers: ContainerRun[];
  readonly volumes = new Map<string, VolumeDir>();
  readonly dir: string;
  startTime: string | undefined;
  private readonly transitions = new Map<string, { status: string; time: string }>();
  private lastStatus = '';
  private dirty = false;
  private loop: Promise<void> | undefined;
  volumesSyncedAt = 0;
  volumeError: string | undefined;
  tokens = new Map<string, { token: string; refreshAt: number }>();
  terminating = false;
  terminated = false;
  removed = false;
  deleteSent = false;

  constructor(
    readonly kubelet: TestKubelet,
    pod: Pod,
  ) {
    this.pod = pod;
    this.containers = pod.spec.containers.map((c) => new ContainerRun(c));
    this.dir = path.join(kubelet.dir, 'pods', pod.metadata.uid as string);
  }

  get key(): string {
    return `${this.pod.metadata.namespace}/${this.pod.metadata.name}`;
  }
  get podIP(): string {
    return this.pod.spec.hostNetwork ? this.hostIP : (this.sandbox?.ip ?? '');
  }

  kick(): void {
    this.dirty = true;
    if (!this.loop) {
      this.loop = (async () => {
        while (this.dirty) {
          this.dirty = false;
          try {
            await this.kubelet.syncPod(this);
          } catch (e) {
            this.kubelet.log(`sync ${this.key}: ${(e as Error).stack ?? e}`);
          }
        }
        this.loop = undefined;
      })();
    }
  }

  async idle(): Promise<void> {
    while (this.loop) await this.loop;
  }

  /** A condition with lastTransitionTime kept across syncs. */
  condition(type: string, ok: boolean, reason?: string, message?: string): Condition {
    const status = ok ? 'True' : 'False';
    const prev = this.transitions.get(type);
    const time = prev && prev.status === status ? prev.time : now3339();
    this.transitions.set(type, { status, time });
    return {
      type,
      status,
      lastProbeTime: null,
      lastTransitionTime: time,
      observedGeneration: this.pod.metadata.generation,
      ...(reason ? { reason } : {}),
      ...(message ? { message } : {}),
    };
  }

  /** True when `status` differs from what was last sent (and records it). */
  changed(status: unknown): boolean {
    const s = JSON.stringify(status);
    if (s === this.lastStatus) return false;
    this.lastStatus = s;
    return true;
  }
  forgetSentStatus(): void {
    this.lastStatus = '';
  }
}

export interface TestKubeletOptions {
  /** kubeconfig with a client certificate (ControlPlane.kubeconfig). */
  kubeconfig: string;
  /** Default 'etcd-ts-node'. */
  nodeName?: string;
  /** Resync of every pod (restarts after back-off, probes' effects, volume refresh); default 1000 ms. */
  syncIntervalMs?: number;
  /** How often configMap/secret/projected volumes are rewritten from the API; default 10 s. */
  volumeRefreshMs?: number;
  /** Crash back-off: first delay and cap (Kubernetes: 10 s, 300 s). */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Storage classes whose claims this kubelet provisions ('' = claims without a class). Default ['']. */
  storageClassNames?: string[];
}

/** The test kubelet (see the header of this file). */
export class TestKubelet {
  readonly nodeName: string;
  /** Temp dir: pods' volumes, logs, provisioned volumes, the kubelet's own log. */
  readonly dir: string;
  readonly net = new PodNetwork();
  readonly api: KubeApi;
  private readonly opts: Required<Omit<TestKubeletOptions, 'kubeconfig' | 'nodeName'>>;
  private readonly workers = new Map<string, PodWorker>();
  private readonly byKey = new Map<string, PodWorker>();
  private podInformer: Informer<Pod> | undefined;
  private pvcInformer: Informer<Pvc> | undefined;
  private pvInformer: Informer<Pv> | undefined;
  private sliceInformer: Informer<EndpointSlice> | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private nodeUid = '';
  private started = false;
  private stopping = false;
  private readonly provisioning = new Set<string>();
  private readonly reclaiming = new Set<string>();
  /** name -> IPs, as cluster DNS would answer for pods of headless Services. */
  private dnsRecords = new Map<string, string[]>();
  private readonly logLines: string[] = [];
  private readonly logFile: string;
  private apiProxy: net.Server | undefined;
  private readonly apiProxySockets = new Set<net.Socket>();
  private readonly readyTransition = now3339();

  constructor(options: TestKubeletOptions) {
    this.nodeName = options.nodeName ?? 'etcd-ts-node';
    this.opts = {
      syncIntervalMs: options.syncIntervalMs ?? 1000,
      volumeRefreshMs: options.volumeRefreshMs ?? 10_000,
      backoffInitialMs: options.backoffInitialMs ?? 10_000,
      backoffMaxMs: options.backoffMaxMs ?? 300_000,
      storageClassNames: options.storageClassNames ?? [''],
    };
    this.api = KubeApi.fromKubeconfig(options.kubeconfig);
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-ts-kubelet-'));
    // Pod processes may run as another user: they must reach their volume and log dirs.
    fs.chmodSync(this.dir, 0o755);
    for (const d of ['pods', 'logs', 'volumes']) fs.mkdirSync(path.join(this.dir, d), { mode: 0o755 });
    this.logFile = path.join(this.dir, 'kubelet.log');
  }

  // -------------------------------------------------------------------------------------------------------
  // Life cycle

  /** Sets up pod networking, registers the Node, starts the Lease and the watches. On failure, cleans up and throws. */
  async start(): Promise<void> {
    if (this.started) throw new Error('TestKubelet.start: already started');
    this.started = true;
    etcdTsBin(); // fail now if the repository is not built
    try {
      await this.net.init(this.dir);
      this.log(`pod network: bridge ${this.net.bridge} ${this.net.gateway}/24`);
      await this.startApiProxy();
      await this.registerNode();
      this.timers.push(setInterval(() => void this.renewLease(), 10_000));
      this.timers.push(setInterval(() => void this.postNodeStatus(), 60_000));
      this.pvInformer = new Informer<Pv>(this.api, '/api/v1/persistentvolumes', () => this.reclaimVolumes());
      this.pvcInformer = new Informer<Pvc>(this.api, '/api/v1/persistentvolumeclaims', (type, pvc) => {
        if (type !== 'DELETED') void this.provision(pvc);
      });
      this.sliceInformer = new Informer<EndpointSlice>(this.api, '/apis/discovery.k8s.io/v1/endpointslices', () => this.updateDns());
      this.podInformer = new Informer<Pod>(
        this.api,
        `/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${this.nodeName}`)}`,
        (type, pod, old) => this.onPod(type, pod, old),
      );
      for (const inf of [this.pvInformer, this.pvcInformer, this.sliceInformer, this.podInformer]) await inf.start();
      this.timers.push(setInterval(() => this.workers.forEach((w) => w.kick()), this.opts.syncIntervalMs));
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  /**
   * Stops the watches and the heartbeat, stops every pod's processes (SIGTERM, SIGKILL after
   * `graceMs`), removes the pod network and the temp dir (kept with ETCD_TS_KEEP_TMP=1). The API
   * objects (Node, Pods, volumes) are left as they are: the control plane usually goes next.
   */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.timers.forEach((t) => clearInterval(t));
    await Promise.all([this.podInformer, this.pvcInformer, this.pvInformer, this.sliceInformer].map((i) => i?.stop()));
    for (const w of this.workers.values()) {
      w.removed = true;
      await w.idle();
    }
    await Promise.all([...this.workers.values()].map((w) => this.killAll(w, graceMs, 'the test kubelet is stopping')));
    this.apiProxySockets.forEach((s) => s.destroy());
    await new Promise<void>((resolve) => (this.apiProxy ? this.apiProxy.close(() => resolve()) : resolve()));
    await this.net.close().catch((e: Error) => this.log(`pod network cleanup: ${e.message}`));
    this.api.close();
    if (process.env.ETCD_TS_KEEP_TMP !== '1') fs.rmSync(this.dir, { recursive: true, force: true });
  }

  // -------------------------------------------------------------------------------------------------------
  // For tests

  log(line: string): void {
    const l = `${new Date().toISOString()} ${line}`;
    this.logLines.push(l);
    if (this.logLines.length > LOG_TAIL_LINES) this.logLines.splice(0, this.logLines.length - LOG_TAIL_LINES);
    try {
      fs.appendFileSync(this.logFile, l + '\n');
    } catch {
      // dir removed
    }
  }

  /** The kubelet's own recent log lines. */
  kubeletLog(): string {
    return this.logLines.join('\n');
  }

  /** The running pod (this node's) named ns/name, if any. */
  podWorker(namespace: string, name: string): { uid: string; ip: string; netns: string | undefined; volumes: Map<string, string> } | undefined {
    const w = this.byKey.get(`${namespace}/${name}`);
    if (!w) return undefined;
    return { uid: w.pod.metadata.uid as string, ip: w.podIP, netns: w.sandbox?.netns, volumes: new Map([...w.volumes].map(([k, v]) => [k, v.hostDir])) };
  }

  /**
   * Runs a command in a pod like `kubectl exec` (but as root): in the namespaces (mount, UTS, network),
   * root and working directory of its first running container, or, while none runs, in the pod's network
   * namespace with its /etc/hosts. Bounded like procs.run (default 15 s).
   */
  exec(namespace: string, name: string, argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    const w = this.byKey.get(`${namespace}/${name}`);
    if (!w) return Promise.reject(new Error(`exec: pod ${namespace}/${name} does not run on ${this.nodeName}`));
    const pid = w.containers.find((c) => c.running && c.proc?.pid)?.proc?.pid;
    if (pid) return run('nsenter', [`--target=${pid}`, '--mount', '--uts', ...(w.pod.spec.hostNetwork ? [] : ['--net']), '--root', '--wd', '--', ...argv], opts);
    if (w.pod.spec.hostNetwork) return run(argv[0], argv.slice(1), opts);
    if (!w.sandbox) return Promise.reject(new Error(`exec: pod ${namespace}/${name} has no network namespace yet`));
    return run('ip', ['netns', 'exec', w.sandbox.netns, ...argv], opts);
  }

  /** What cluster DNS would answer for `host` (pods of headless Services), as the pods' /etc/hosts has it. */
  resolve(host: string): string[] {
    return this.dnsRecords.get(host.replace(/\.$/, '')) ?? [];
  }

  /** All log files of a pod's containers (every incarnation and restart), oldest first, with headers. */
  containerLog(namespace: string, name: string, container?: string): string {
    const out: string[] = [];
    const logs = path.join(this.dir, 'logs');
    let dirs: string[] = [];
    try {
      dirs = fs.readdirSync(logs).filter((d) => d.startsWith(`${namespace}_${name}_`));
    } catch {
      return '';
    }
    const files: { file: string; mtime: number }[] = [];
    for (const d of dirs) {
      for (const c of fs.readdirSync(path.join(logs, d))) {
        if (container && c !== container) continue;
        for (const f of fs.readdirSync(path.join(logs, d, c))) {
          const file = path.join(logs, d, c, f);
          files.push({ file, mtime: fs.statSync(file).mtimeMs });
        }
      }
    }
    for (const f of files.sort((a, b) => a.mtime - b.mtime)) out.push(`===== ${path.relative(logs, f.file)}\n${fs.readFileSync(f.file, 'utf8')}`);
    return out.join('\n');
  }

  /** The last lines of every container log and of the kubelet's own log: for failure messages. */
  logTails(lines = 40): string {
    const out: string[] = [`--- test kubelet (${this.logFile}) ---`, this.logLines.slice(-lines).join('\n')];
    const logs = path.join(this.dir, 'logs');
    try {
      for (const d of fs.readdirSync(logs)) {
        for (const c of fs.readdirSync(path.join(logs, d))) {
          for (const f of fs.readdirSync(path.join(logs, d, c))) {
            const text = fs.readFileSync(path.join(logs, d, c, f), 'utf8').split('\n');
            out.push(`--- ${d}/${c}/${f} ---`, text.slice(-lines).join('\n'));
          }
        }
      }
    } catch {
      // gone
    }
    return out.join('\n');
  }

  // -------------------------------------------------------------------------------------------------------
  // The `kubernetes` Service, for pods

  /**
   * Where pods reach kube-apiserver, as KUBERNETES_SERVICE_HOST/PORT tell them. A real node routes the
   * `kubernetes` Service's ClusterIP to the API server (kube-proxy). Here nothing routes ClusterIPs, so
   * the address is this node's own (the bridge, which every pod reaches) on the Service's port 443,
   * where startApiProxy() forwards each connection to the API server of the kubeconfig. The API server's
   * serving certificate names every bridge address the test kubelet may get (test/helpers/kube.ts), so
   * in-cluster clients verify it against the service account's ca.crt as they would the ClusterIP.
   */
  get apiServiceAddress(): { host: string; port: number } {
    return { host: this.net.gateway, port: API_SERVICE_PORT };
  }

  /** The variables the kubelet gives every container for the `kubernetes` Service (docker links style included). */
  private kubernetesServiceEnv(): Record<string, string> {
    const { host, port } = this.apiServiceAddress;
    const url = `tcp://${host}:${port}`;
    return {
      KUBERNETES_SERVICE_HOST: host,
      KUBERNETES_SERVICE_PORT: String(port),
      KUBERNETES_SERVICE_PORT_HTTPS: String(port),
      KUBERNETES_PORT: url,
      [`KUBERNETES_PORT_${port}_TCP`]: url,
      [`KUBERNETES_PORT_${port}_TCP_PROTO`]: 'tcp',
      [`KUBERNETES_PORT_${port}_TCP_PORT`]: String(port),
      [`KUBERNETES_PORT_${port}_TCP_ADDR`]: host,
    };
  }

  /** A TCP forwarder from apiServiceAddress to the kubeconfig's API server (TLS passes through untouched). */
  private async startApiProxy(): Promise<void> {
    const target = new URL(this.api.creds.server);
    const server = net.createServer((client) => {
      const upstream = net.connect({ host: target.hostname, port: Number(target.port || 443) });
      for (const s of [client, upstream]) {
        this.apiProxySockets.add(s);
        s.once('close', () => this.apiProxySockets.delete(s));
        // Either side failing ends both, as a closed TCP connection would.
        s.once('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    const { host, port } = this.apiServiceAddress;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port, exclusive: true }, () => resolve());
    });
    server.on('error', (e) => this.log(`kubernetes Service forwarder: ${e.message}`));
    this.apiProxy = server;
    this.log(`kubernetes Service for pods: ${host}:${port} -> ${target.host}`);
  }

  // -------------------------------------------------------------------------------------------------------
  // Node and Lease

  private nodeStatus(): Record<string, unknown> {
    const t = now3339();
    let storage = '10Gi';
    try {
      const s = fs.statfsSync(this.dir);
      storage = `${Math.floor((s.blocks * s.bsize) / 1024)}Ki`;
    } catch {
      // keep the default
    }
    const capacity = { cpu: String(os.cpus().length), memory: `${Math.floor(os.totalmem() / 1024)}Ki`, pods: '110', 'ephemeral-storage': storage };
    const read = (f: string) => {
      try {
        return fs.readFileSync(f, 'utf8').trim();
      } catch {
        return '';
      }
    };
    const osImage = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(read('/etc/os-release'))?.[1] ?? 'Linux';
    const cond = (type: string, status: string, reason: string, message: string) => ({
      type,
      status,
      reason,
      message,
      lastHeartbeatTime: t,
      lastTransitionTime: this.readyTransition,
    });
    return {
      capacity,
      allocatable: capacity,
      conditions: [
        cond('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
        cond('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
        cond('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
        cond('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status (the etcd-ts test kubelet)'),
      ],
      addresses: [
        { type: 'InternalIP', address: this.net.gateway },
        { type: 'Hostname', address: this.nodeName },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: 0 } },
      nodeInfo: {
        machineID: read('/etc/machine-id'),
        systemUUID: read('/etc/machine-id'),
        bootID: read('/proc/sys/kernel/random/boot_id'),
        kernelVersion: os.release(),
        osImage,
        containerRuntimeVersion: 'etcd-ts-test-kubelet://0.1.0',
        kubeletVersion: `v${K8S_VERSION}`,
        operatingSystem: 'linux',
        architecture: process.arch === 'x64' ? 'amd64' : process.arch,
      },
    };
  }

  private async registerNode(): Promise<void> {
    const arch = process.arch === 'x64' ? 'amd64' : process.arch;
    const node = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name: this.nodeName,
        labels: { 'kubernetes.io/hostname': this.nodeName, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': arch, 'beta.kubernetes.io/os': 'linux', 'beta.kubernetes.io/arch': arch },
      },
      spec: { podCIDR: this.net.subnet, podCIDRs: [this.net.subnet] },
    };
    let created: KubeObject;
    try {
      created = await this.api.create('/api/v1/nodes', node);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 409)) throw e;
      created = await this.api.get(`/api/v1/nodes/${this.nodeName}`);
    }
    this.nodeUid = created.metadata.uid as string;
    await this.postNodeStatus(true);
    const lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: this.nodeName, namespace: 'kube-node-lease', ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: this.nodeName, uid: this.nodeUid }] },
      spec: { holderIdentity: this.nodeName, leaseDurationSeconds: 40, renewTime: nowMicro() },
    };
    // kube-node-lease is made by kube-apiserver shortly after it starts.
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await this.api.create('/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', lease);
        break;
      } catch (e) {
        if (e instanceof ApiError && e.status === 409) {
          await this.renewLease(true);
          break;
        }
        if (Date.now() > deadline) throw e;
        await sleep(500);
      }
    }
    this.log(`registered node ${this.nodeName}`);
  }

  private async postNodeStatus(throwErrors = false): Promise<void> {
    try {
      await this.api.mergePatch(`/api/v1/nodes/${this.nodeName}/status`, { status: this.nodeStatus() });
    } catch (e) {
      if (throwErrors) throw e;
      this.log(`node status: ${(e as Error).message}`);
    }
  }

  private async renewLease(throwErrors = false): Promise<void> {
    try {
      await this.api.mergePatch(`/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${this.nodeName}`, {
        spec: { holderIdentity: this.nodeName, leaseDurationSeconds: 40, renewTime: nowMicro() },
      });
    } catch (e) {
      if (throwErrors) throw e;
      this.log(`lease renew: ${(e as Error).message}`);
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // Volumes: the provisioner side

  /** Creates a hostPath PersistentVolume pre-bound to a pending claim of a class this kubelet serves. */
  private async provision(pvc: Pvc): Promise<void> {
    const uid = pvc.metadata.uid as string;
    if (this.stopping || pvc.spec.volumeName || pvc.metadata.deletionTimestamp || (pvc.status?.phase ?? 'Pending') !== 'Pending') return;
    if (!this.opts.storageClassNames.includes(pvc.spec.storageClassName ?? '')) return;
    if (this.provisioning.has(uid)) return;
    this.provisioning.add(uid);
    const name = `pvc-${uid}`;
    const hostDir = path.join(this.dir, 'volumes', name);
    try {
      fs.mkdirSync(hostDir, { recursive: true });
      fs.chmodSync(hostDir, 0o777); // as local-path provisioners make them: any pod user may write
      await this.api.create('/api/v1/persistentvolumes', {
        apiVersion: 'v1',
        kind: 'PersistentVolume',
        metadata: { name, annotations: { 'pv.kubernetes.io/provisioned-by': PROVISIONER_NAME } },
        spec: {
          capacity: { storage: pvc.spec.resources?.requests?.storage ?? '1Gi' },
          accessModes: pvc.spec.accessModes ?? ['ReadWriteOnce'],
          persistentVolumeReclaimPolicy: 'Delete',
          storageClassName: pvc.spec.storageClassName ?? '',
          volumeMode: pvc.spec.volumeMode ?? 'Filesystem',
          claimRef: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: pvc.metadata.namespace, name: pvc.metadata.name, uid },
          hostPath: { path: hostDir, type: 'Directory' },
          nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [this.nodeName] }] }] } },
        },
      });
      this.log(`provisioned ${name} (${hostDir}) for claim ${pvc.metadata.namespace}/${pvc.metadata.name}`);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 409)) {
        this.provisioning.delete(uid);
        this.log(`provision ${name}: ${(e as Error).message}`);
      }
    }
  }

  /** Deletes the Released volumes this kubelet provisioned (reclaim policy Delete), with their directory. */
  private reclaimVolumes(): void {
    for (const pv of this.pvInformer?.items.values() ?? []) {
      if (pv.metadata.annotations?.['pv.kubernetes.io/provisioned-by'] !== PROVISIONER_NAME) continue;
      if (pv.status?.phase !== 'Released' || pv.metadata.deletionTimestamp || this.reclaiming.has(pv.metadata.name)) continue;
      this.reclaiming.add(pv.metadata.name);
      const dir = pv.spec.hostPath?.path;
      void this.api
        .delete(`/api/v1/persistentvolumes/${pv.metadata.name}`)
        .then(() => {
          this.log(`deleted released volume ${pv.metadata.name}`);
          if (dir && dir.startsWith(path.join(this.dir, 'volumes') + path.sep)) fs.rmSync(dir, { recursive: true, force: true });
        })
        .catch((e: Error) => this.log(`delete volume ${pv.metadata.name}: ${e.message}`));
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // Cluster DNS, as /etc/hosts

  private updateDns(): void {
    const records = new Map<string, string[]>();
    for (const slice of this.sliceInformer?.items.values() ?? []) {
      const labels = slice.metadata.labels ?? {};
      const svc = labels['kubernetes.io/service-name'];
      // Cluster DNS answers pod hostnames only for headless Services.
      if (!svc || !('service.kubernetes.io/headless' in labels)) continue;
      for (const ep of slice.endpoints ?? []) {
        if (!ep.hostname || ep.conditions?.ready === false) continue;
        const base = `${ep.hostname}.${svc}.${slice.metadata.namespace}.svc`;
        for (const name of [`${base}.cluster.local`, base]) {
          const list = records.get(name) ?? [];
          for (const a of ep.addresses) if (!list.includes(a)) list.push(a);
          records.set(name, list);
        }
      }
    }
    this.dnsRecords = records;
    for (const w of this.workers.values()) this.writeHosts(w);
  }

  private writeHosts(w: PodWorker): void {
    if (!w.sandbox) return;
    const { hostname, subdomain } = w.pod.spec;
    const ns = w.pod.metadata.namespace;
    const self =
      hostname && subdomain ? `${w.sandbox.ip}\t${hostname}.${subdomain}.${ns}.svc.cluster.local\t${hostname}` : `${w.sandbox.ip}\t${hostname || w.pod.metadata.name}`;
    const lines = [
      '# Kubernetes-managed hosts file (the etcd-ts test kubelet; below the pod, what cluster DNS answers for pods).',
      '127.0.0.1\tlocalhost',
      '::1\tlocalhost ip6-localhost ip6-loopback',
      self,
    ];
    for (const [name, ips] of [...this.dnsRecords].sort(([a], [b]) => a.localeCompare(b))) for (const ip of ips) lines.push(`${ip}\t${name}`);
    this.net.writeHosts(w.sandbox, lines.join('\n') + '\n');
  }

  // -------------------------------------------------------------------------------------------------------
  // Pods

  private onPod(type: 'ADDED' | 'MODIFIED' | 'DELETED', pod: Pod, old: Pod | undefined): void {
    const uid = pod.metadata.uid as string;
    if (old && old.metadata.uid !== uid) this.podGone(old.metadata.uid as string);
    if (type === 'DELETED') {
      this.podGone(uid);
      return;
    }
    if (this.stopping) return;
    let w = this.workers.get(uid);
    if (!w) {
      w = new PodWorker(this, pod);
      this.workers.set(uid, w);
      this.byKey.set(w.key, w);
      this.log(`pod ${w.key} (${uid}) bound to ${this.nodeName}`);
    }
    w.pod = pod;
    w.kick();
  }

  private podGone(uid: string): void {
    const w = this.workers.get(uid);
    if (!w || w.removed) return;
    w.removed = true;
    w.kick();
  }

  /** One sync of a pod: the kubelet's syncPod. */
  async syncPod(w: PodWorker): Promise<void> {
    if (w.removed) {
      // The pod object is gone (deleted by this kubelet, or forced): stop everything now.
      await this.killAll(w, 2_000, 'the pod was removed from the API');
      this.workers.delete(w.pod.metadata.uid as string);
      if (this.byKey.get(w.key) === w) this.byKey.delete(w.key);
      // Its emptyDir, configMap, secret and projected volumes go with it (the logs stay).
      if (process.env.ETCD_TS_KEEP_TMP !== '1') fs.rmSync(w.dir, { recursive: true, force: true });
      this.log(`pod ${w.key} (${w.pod.metadata.uid}) removed`);
      return;
    }
    if (this.stopping) return;
    const pod = w.pod;
    if (pod.metadata.deletionTimestamp) {
      if (!w.terminated) {
        w.terminating = true;
        const grace = (pod.metadata.deletionGracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30) * 1000;
        this.log(`pod ${w.key}: deletion requested, stopping containers (grace ${grace} ms)`);
        await this.killAll(w, grace, 'the pod is being deleted');
        w.terminated = true;
      }
      await this.patchStatus(w);
      if (!w.deleteSent) {
        try {
          await this.api.delete(`/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}`, {
            apiVersion: 'v1',
            kind: 'DeleteOptions',
            gracePeriodSeconds: 0,
            preconditions: { uid: pod.metadata.uid },
          });
          w.deleteSent = true;
          this.log(`pod ${w.key}: deleted`);
        } catch (e) {
          if (e instanceof ApiError && (e.status === 404 || e.status === 409)) w.deleteSent = true;
          else this.log(`pod ${w.key}: delete: ${(e as Error).message}`);
        }
      }
      return;
    }
    if (w.terminated) return; // terminal (restartPolicy Never/OnFailure), nothing more to run

    const unsupported = [
      ...(pod.spec.initContainers?.length ? ['init containers'] : []),
      ...(pod.spec.ephemeralContainers?.length ? ['ephemeral containers'] : []),
      ...pod.spec.containers.flatMap((c) =>
        (['startupProbe', 'livenessProbe', 'readinessProbe'] as const)
          .filter((k) => c[k] && !c[k]?.httpGet && !c[k]?.tcpSocket)
          .map((k) => `${k} of ${c.name} (only httpGet and tcpSocket probes are supported)`),
      ),
      ...pod.spec.containers.filter((c) => c.lifecycle).map((c) => `lifecycle hooks of ${c.name}`),
    ];
    if (unsupported.length > 0) {
      const message = `the test kubelet cannot run this pod: ${unsupported.join(', ')}`;
      for (const c of w.containers) c.waiting = { reason: 'CreateContainerConfigError', message };
      await this.patchStatus(w);
      return;
    }

    // Sandbox: network namespace and IP, before any container (the pod IP is reported at once).
    if (!w.startTime) w.startTime = now3339();
    if (!w.hostIP) w.hostIP = this.net.gateway;
    if (!pod.spec.hostNetwork && !w.sandbox) {
      w.sandbox = await this.net.add();
      this.writeHosts(w);
      this.log(`pod ${w.key}: network namespace ${w.sandbox.netns}, IP ${w.sandbox.ip}`);
    }

    // Volumes (refreshed now and then).
    if (Date.now() - w.volumesSyncedAt >= this.opts.volumeRefreshMs || w.volumeError) {
      try {
        await this.syncVolumes(w);
        w.volumesSyncedAt = Date.now();
        w.volumeError = undefined;
      } catch (e) {
        const message = (e as Error).message;
        if (message !== w.volumeError) this.event(w, 'Warning', 'FailedMount', message);
        w.volumeError = message;
      }
    }

    // Containers.
    const policy = pod.spec.restartPolicy ?? 'Always';
    for (const c of w.containers) {
      if (c.running) continue;
      if (c.terminated && !c.willRestart) continue;
      if (w.volumeError) {
        if (!c.terminated) c.waiting = { reason: 'ContainerCreating', message: w.volumeError };
        continue;
      }
      if (c.terminated && Date.now() < c.nextStartAt) {
        c.waiting = {
          reason: 'CrashLoopBackOff',
          message: `back-off ${Math.round(c.backoffMs / 1000)}s restarting failed container=${c.name} pod=${pod.metadata.name}_${pod.metadata.namespace}(${pod.metadata.uid})`,
        };
        continue;
      }
      try {
        await this.startContainer(w, c);
      } catch (e) {
        if (!(e instanceof ContainerError)) throw e;
        const pulling = ['ErrImagePull', 'ImagePullBackOff'];
        const reason = e.reason === 'ErrImagePull' && pulling.includes(c.waiting.reason) ? 'ImagePullBackOff' : e.reason;
        if (c.waiting.message !== e.message) this.event(w, 'Warning', 'Failed', e.message, c.name);
        c.waiting = { reason, message: e.message };
      }
    }
    if (policy !== 'Always' && w.containers.every((c) => !c.running && c.terminated && !c.willRestart)) {
      w.terminated = true;
      if (w.sandbox) {
        await this.net.remove(w.sandbox);
        w.sandbox = undefined;
      }
    }
    await this.patchStatus(w);
  }

  private async containerEnvVars(w: PodWorker, c: Container): Promise<Map<string, string>> {
    const pod = w.pod;
    const ns = pod.metadata.namespace as string;
    const vars = new Map<string, string>();
    const configMap = async (name: string, optional?: boolean) => {
      const cm = await this.api.getOrNull<ConfigMap>(`/api/v1/namespaces/${ns}/configmaps/${name}`);
      if (!cm && !optional) throw new ContainerError('CreateContainerConfigError', `configmap "${name}" not found`);
      return cm;
    };
    const secret = async (name: string, optional?: boolean) => {
      const s = await this.api.getOrNull<Secret>(`/api/v1/namespaces/${ns}/secrets/${name}`);
      if (!s && !optional) throw new ContainerError('CreateContainerConfigError', `secret "${name}" not found`);
      return s;
    };
    for (const from of c.envFrom ?? []) {
      const prefix = from.prefix ?? '';
      if (from.configMapRef) {
        const cm = await configMap(from.configMapRef.name, from.configMapRef.optional);
        for (const [k, v] of Object.entries(cm?.data ?? {})) vars.set(prefix + k, v);
      }
      if (from.secretRef) {
        const s = await secret(from.secretRef.name, from.secretRef.optional);
        for (const [k, v] of Object.entries(s?.data ?? {})) vars.set(prefix + k, Buffer.from(v, 'base64').toString('utf8'));
      }
    }
    for (const e of c.env ?? []) {
      const vf = e.valueFrom;
      if (!vf) {
        vars.set(e.name, expandVars(e.value ?? '', vars));
      } else if (vf.fieldRef) {
        vars.set(e.name, this.fieldValue(w, vf.fieldRef.fieldPath));
      } else if (vf.configMapKeyRef) {
        const r = vf.configMapKeyRef;
        const cm = await configMap(r.name, r.optional);
        const v = cm?.data?.[r.key];
        if (v === undefined && cm && !r.optional) throw new ContainerError('CreateContainerConfigError', `couldn't find key ${r.key} in ConfigMap ${ns}/${r.name}`);
        if (v !== undefined) vars.set(e.name, v);
      } else if (vf.secretKeyRef) {
        const r = vf.secretKeyRef;
        const s = await secret(r.name, r.optional);
        const v = s?.data?.[r.key];
        if (v === undefined && s && !r.optional) throw new ContainerError('CreateContainerConfigError', `couldn't find key ${r.key} in Secret ${ns}/${r.name}`);
        if (v !== undefined) vars.set(e.name, Buffer.from(v, 'base64').toString('utf8'));
      } else {
        throw new ContainerError('CreateContainerConfigError', `env ${e.name}: only value, fieldRef, configMapKeyRef and secretKeyRef are supported by the test kubelet`);
      }
    }
    return vars;
  }

  private fieldValue(w: PodWorker, fieldPath: string): string {
    const pod = w.pod;
    const m = /^metadata\.(labels|annotations)\['(.*)'\]$/.exec(fieldPath);
    if (m) return (m[1] === 'labels' ? pod.metadata.labels : pod.metadata.annotations)?.[m[2]] ?? '';
    const values: Record<string, string | undefined> = {
      'metadata.name': pod.metadata.name,
      'metadata.namespace': pod.metadata.namespace,
      'metadata.uid': pod.metadata.uid,
      'spec.nodeName': pod.spec.nodeName,
      'spec.serviceAccountName': pod.spec.serviceAccountName,
      'status.hostIP': w.hostIP,
      'status.hostIPs': w.hostIP,
      'status.podIP': w.podIP,
      'status.podIPs': w.podIP,
    };
    if (fieldPath === 'metadata.labels' || fieldPath === 'metadata.annotations') {
      const map = (fieldPath === 'metadata.labels' ? pod.metadata.labels : pod.metadata.annotations) ?? {};
      return Object.keys(map)
        .sort()
        .map((k) => `${k}=${JSON.stringify(map[k])}`)
        .join('\n');
    }
    if (!(fieldPath in values)) throw new ContainerError('CreateContainerConfigError', `fieldRef ${fieldPath} is not supported by the test kubelet`);
    return values[fieldPath] ?? '';
  }

  private async startContainer(w: PodWorker, c: ContainerRun): Promise<void> {
    const pod = w.pod;
    const spec = c.spec;
    const entry = imageEntrypoint(spec.image, spec.command);
    const vars = await this.containerEnvVars(w, spec);
    const mounts: ContainerMount[] = [];
    for (const m of spec.volumeMounts ?? []) {
      const v = w.volumes.get(m.name);
      if (!v) throw new ContainerError('CreateContainerConfigError', `volumeMount ${m.name}: no such volume in the pod`);
      const source = m.subPath ? path.join(v.hostDir, m.subPath) : v.hostDir;
      // A missing subPath is made as a directory, as the kubelet does.
      if (m.subPath && !fs.existsSync(source)) fs.mkdirSync(source, { recursive: true });
      mounts.push({ mountPath: m.mountPath, source, readOnly: m.readOnly === true });
    }
    const argv = [...entry.slice(0, 2), ...entry.slice(2).map((a) => expandVars(a, vars)), ...(spec.args ?? []).map((a) => expandVars(a, vars))];
    const hostname = (pod.spec.hostname || (pod.metadata.name as string)).slice(0, 63);
    const env: Record<string, string> = {
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      HOSTNAME: pod.spec.hostNetwork ? os.hostname() : hostname,
      // The `kubernetes` Service, as the kubelet injects it into every container (see apiServiceAddress).
      ...this.kubernetesServiceEnv(),
    };
    for (const [k, v] of vars) env[k] = v;
    if (env.HOME === undefined) env.HOME = '/';
    const wd = spec.workingDir || '/';
    // The container's root: a directory of the pod's, empty on this machine (see containerRootScript).
    const root = path.join(w.dir, 'roots', c.name);
    fs.mkdirSync(root, { recursive: true, mode: 0o755 });
    const rootScript = containerRootScript(root, mounts, wd, spec.securityContext?.readOnlyRootFilesystem === true, repoRoot());

    // The user: container securityContext over the pod's; the image's user is root.
    const psc = pod.spec.securityContext ?? {};
    const csc = spec.securityContext ?? {};
    const uid = csc.runAsUser ?? psc.runAsUser ?? 0;
    const gid = csc.runAsGroup ?? psc.runAsGroup ?? 0;
    if ((csc.runAsNonRoot ?? psc.runAsNonRoot) && uid === 0) {
      throw new ContainerError('CreateContainerConfigError', 'container has runAsNonRoot and image will run as root');
    }
    const groups = [...(psc.fsGroup !== undefined ? [psc.fsGroup] : []), ...(psc.supplementalGroups ?? [])];
    const setpriv = ['setpriv', '--pdeathsig', 'KILL'];
    if (uid !== 0 || gid !== 0 || groups.length > 0) {
      setpriv.push(`--reuid=${uid}`, `--regid=${gid}`, groups.length > 0 ? `--groups=${groups.join(',')}` : '--clear-groups');
    }
    if (csc.allowPrivilegeEscalation === false) setpriv.push('--no-new-privs');
    // Its own mount namespace (slave: this machine's later mounts still show, its own never leak out) and,
    // unless it shares the node's network, its own UTS namespace with the pod's hostname, as a runtime does.
    const namespaces = ['unshare', '--mount', '--propagation', 'slave', ...(pod.spec.hostNetwork ? [] : ['--uts'])];
    const script = (pod.spec.hostNetwork ? '' : `hostname ${shq(hostname)}\n`) + rootScript;
    const full = [...(w.sandbox ? this.net.execPrefix(w.sandbox) : []), ...namespaces, 'sh', '-c', script, 'sh', ...setpriv, '--', ...argv];

    const restartCount = c.starts;
    const logDir = path.join(this.dir, 'logs', `${pod.metadata.namespace}_${pod.metadata.name}_${pod.metadata.uid}`, c.name);
    fs.mkdirSync(logDir, { recursive: true });
    const logPath = path.join(logDir, `${restartCount}.log`);
    const fd = fs.openSync(logPath, 'a');
    fs.writeSync(fd, `----- ${new Date().toISOString()} start (restart ${restartCount}): ${argv.join(' ')}\n`);
    let proc: ChildProcess;
    try {
      proc = spawn(full[0], full.slice(1), { cwd: '/', env, stdio: ['ignore', fd, fd] });
    } finally {
      fs.closeSync(fd);
    }
    if (c.starts > 0) c.lastTerminated = c.terminated;
    c.starts++;
    c.proc = proc;
    c.running = true;
    c.terminated = undefined;
    c.killReason = undefined;
    c.startedMs = Date.now();
    c.startedAt = now3339();
    c.started = !spec.startupProbe;
    c.ready = false;
    c.containerID = `etcd-ts-test-kubelet://${pod.metadata.uid}/${c.name}/${restartCount}`;
    const mountList = mounts.map((m) => `${m.source} at ${m.mountPath}${m.readOnly ? ' (ro)' : ''}`).join(', ');
    this.log(`pod ${w.key}: started container ${c.name} (pid ${proc.pid}, restart ${restartCount}): ${[...namespaces, ...setpriv, '--', ...argv].join(' ')}; mounts: ${mountList || 'none'}`);
    this.event(w, 'Normal', 'Started', `Started container ${c.name}`, c.name);
    c.exited = new Promise<void>((resolve) => {
      let done = false;
      const finish = (code: number | null, signal: NodeJS.Signals | null, message?: string) => {
        if (done) return;
        done = true;
        this.onContainerExit(w, c, code, signal, logPath, message);
        resolve();
      };
      proc.once('error', (e) => finish(128, null, e.message));
      proc.once('exit', (code, signal) => finish(code, signal));
    });
    proc.unref();
    this.startProbes(w, c);
  }

  private onContainerExit(w: PodWorker, c: ContainerRun, code: number | null, signal: NodeJS.Signals | null, logPath: string, message?: string): void {
    const sig = signalNumber(signal);
    const exitCode = code ?? (sig !== undefined ? 128 + sig : 128);
    const reason = c.killReason ? 'Error' : exitCode === 0 ? 'Completed' : message ? 'StartError' : 'Error';
    c.running = false;
    c.proc = undefined;
    c.ready = false;
    c.started = false;
    this.stopProbes(c);
    c.terminated = {
      exitCode,
      ...(sig !== undefined ? { signal: sig } : {}),
      reason,
      ...(message || c.killReason ? { message: message ?? c.killReason } : {}),
      startedAt: c.startedAt,
      finishedAt: now3339(),
      containerID: c.containerID,
    };
    const ranMs = Date.now() - c.startedMs;
    c.crashes = ranMs > 10 * 60_000 ? 1 : c.crashes + 1;
    c.backoffMs = c.crashes <= 1 ? 0 : Math.min(this.opts.backoffInitialMs * 2 ** (c.crashes - 2), this.opts.backoffMaxMs);
    c.nextStartAt = Date.now() + c.backoffMs;
    const policy = w.pod.spec.restartPolicy ?? 'Always';
    c.willRestart = !w.terminating && !w.removed && !this.stopping && (policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0));
    c.waiting = { reason: 'CrashLoopBackOff', message: `back-off ${Math.round(c.backoffMs / 1000)}s restarting failed container=${c.name}` };
    try {
      fs.appendFileSync(logPath, `----- ${new Date().toISOString()} exited code=${code} signal=${signal}${message ? ` (${message})` : ''}\n`);
    } catch {
      // dir removed
    }
    this.log(`pod ${w.key}: container ${c.name} exited code=${code} signal=${signal}${c.killReason ? ` (${c.killReason})` : ''}`);
    w.kick();
  }

  /** Stops a container: SIGTERM, SIGKILL after graceMs; resolves once it exited (bounded). */
  private async stopContainer(c: ContainerRun, graceMs: number, reason: string): Promise<void> {
    this.stopProbes(c);
    if (!c.running || !c.proc) return;
    c.killReason = reason;
    const proc = c.proc;
    proc.kill('SIGTERM');
    const within = async (ms: number): Promise<boolean> => {
      let timer: NodeJS.Timeout | undefined;
      try {
        return await Promise.race([c.exited.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), Math.max(ms, 0))))]);
      } finally {
        clearTimeout(timer);
      }
    };
    if (!(await within(graceMs))) {
      this.log(`container ${c.name} (pid ${proc.pid}) still running ${graceMs} ms after SIGTERM: SIGKILL`);
      proc.kill('SIGKILL');
      await within(10_000);
    }
  }

  private async killAll(w: PodWorker, graceMs: number, reason: string): Promise<void> {
    await Promise.all(w.containers.map((c) => this.stopContainer(c, graceMs, reason)));
    if (w.sandbox) {
      const s = w.sandbox;
      w.sandbox = undefined;
      await this.net.remove(s).catch((e: Error) => this.log(`pod ${w.key}: network cleanup: ${e.message}`));
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // Probes

  private startProbes(w: PodWorker, c: ContainerRun): void {
    this.stopProbes(c);
    const gen = ++c.probeGeneration;
    const spec = c.spec;
    const schedule = (kind: ProbeKind, p: Probe) => {
      const d = probeDefaults(p);
      let successes = 0;
      let failures = 0;
      const tick = async () => {
        if (gen !== c.probeGeneration || !c.running) return;
        if (kind !== 'startup' && !c.started) {
          c.probeTimers.push(setTimeout(() => void tick(), d.periodMs));
          return;
        }
        const failure = await runProbe(p, spec, w.podIP, d.timeoutMs).catch((e: Error) => e.message);
        if (gen !== c.probeGeneration || !c.running) return;
        if (failure === undefined) {
          successes++;
          failures = 0;
        } else {
          failures++;
          successes = 0;
          this.event(w, 'Warning', 'Unhealthy', `${kind[0].toUpperCase()}${kind.slice(1)} probe failed: ${failure}`, c.name);
        }
        if (kind === 'startup') {
          if (successes >= 1) {
            c.started = true;
            w.kick();
            return; // the startup probe is done
          }
          if (failures >= d.failureThreshold) return void this.probeKill(w, c, 'startup');
        } else if (kind === 'liveness') {
          if (failures >= d.failureThreshold) return void this.probeKill(w, c, 'liveness');
        } else {
          const ready = successes >= d.successThreshold ? true : failures >= d.failureThreshold ? false : c.ready;
          if (ready !== c.ready) {
            c.ready = ready;
            w.kick();
          }
        }
        c.probeTimers.push(setTimeout(() => void tick(), d.periodMs));
      };
      const delay = Math.max(0, c.startedMs + d.initialDelayMs - Date.now());
      c.probeTimers.push(setTimeout(() => void tick(), delay));
    };
    if (spec.startupProbe) schedule('startup', spec.startupProbe);
    if (spec.livenessProbe) schedule('liveness', spec.livenessProbe);
    if (spec.readinessProbe) schedule('readiness', spec.readinessProbe);
  }

  private stopProbes(c: ContainerRun): void {
    c.probeGeneration++;
    c.probeTimers.forEach((t) => clearTimeout(t));
    c.probeTimers = [];
  }

  private async probeKill(w: PodWorker, c: ContainerRun, kind: ProbeKind): Promise<void> {
    const message = `Container ${c.name} failed ${kind} probe, will be restarted`;
    this.log(`pod ${w.key}: ${message}`);
    this.event(w, 'Normal', 'Killing', message, c.name);
    const grace = (w.pod.spec.terminationGracePeriodSeconds ?? 30) * 1000;
    await this.stopContainer(c, grace, `${kind} probe failed`);
  }

  // -------------------------------------------------------------------------------------------------------
  // Volumes: the kubelet side

  private async syncVolumes(w: PodWorker): Promise<void> {
    const pod = w.pod;
    const ns = pod.metadata.namespace as string;
    const fsGroup = pod.spec.securityContext?.fsGroup;
    for (const v of pod.spec.volumes ?? []) {
      const own = path.join(w.dir, 'volumes', v.name);
      const prepared = w.volumes.get(v.name);
      if (v.persistentVolumeClaim) {
        if (prepared) continue;
        const claim = v.persistentVolumeClaim.claimName;
        const pvc = await this.api.getOrNull<Pvc>(`/api/v1/namespaces/${ns}/persistentvolumeclaims/${claim}`);
        if (!pvc) throw new Error(`persistentvolumeclaim "${claim}" not found`);
        if (pvc.status?.phase !== 'Bound' || !pvc.spec.volumeName) throw new Error(`persistentvolumeclaim "${claim}" is not bound yet`);
        const pv = await this.api.get<Pv>(`/api/v1/persistentvolumes/${pvc.spec.volumeName}`);
        const hostDir = pv.spec.hostPath?.path ?? pv.spec.local?.path;
        if (!hostDir) throw new Error(`volume ${pv.metadata.name} of claim ${claim}: only hostPath and local volumes can be mounted by the test kubelet`);
        if (!fs.existsSync(hostDir)) throw new Error(`volume ${pv.metadata.name}: ${hostDir} does not exist on this node`);
        w.volumes.set(v.name, { hostDir });
        this.log(`pod ${w.key}: volume ${v.name} = claim ${claim} = ${pv.metadata.name} (${hostDir})`);
      } else if (v.hostPath) {
        if (prepared) continue;
        if (v.hostPath.type === 'DirectoryOrCreate') fs.mkdirSync(v.hostPath.path, { recursive: true });
        w.volumes.set(v.name, { hostDir: v.hostPath.path });
      } else if (v.emptyDir) {
        if (prepared) continue;
        fs.mkdirSync(own, { recursive: true });
        fs.chmodSync(own, 0o777);
        if (fsGroup !== undefined) fs.chownSync(own, 0, fsGroup);
        w.volumes.set(v.name, { hostDir: own });
      } else if (v.configMap || v.secret || v.downwardAPI || v.projected) {
        const files = new Map<string, { data: Buffer; mode: number }>();
        const add = (items: KeyToPath[] | undefined, data: Record<string, Buffer>, mode: number) => {
          if (items) {
            for (const it of items) {
              if (!(it.key in data)) throw new Error(`configmap/secret key ${it.key} not found for volume ${v.name}`);
              files.set(it.path, { data: data[it.key], mode: it.mode ?? mode });
            }
          } else {
            for (const [k, d] of Object.entries(data)) files.set(k, { data: d, mode });
          }
        };
        const cmData = async (name: string, optional?: boolean) => {
          const cm = await this.api.getOrNull<ConfigMap>(`/api/v1/namespaces/${ns}/configmaps/${name}`);
          if (!cm && !optional) throw new Error(`configmap "${name}" not found`);
          const out: Record<string, Buffer> = {};
          for (const [k, s] of Object.entries(cm?.data ?? {})) out[k] = Buffer.from(s);
          for (const [k, s] of Object.entries(cm?.binaryData ?? {})) out[k] = Buffer.from(s, 'base64');
          return out;
        };
        const secretData = async (name: string, optional?: boolean) => {
          const s = await this.api.getOrNull<Secret>(`/api/v1/namespaces/${ns}/secrets/${name}`);
          if (!s && !optional) throw new Error(`secret "${name}" not found`);
          return Object.fromEntries(Object.entries(s?.data ?? {}).map(([k, d]) => [k, Buffer.from(d, 'base64')]));
        };
        const downward = (items: DownwardItem[] | undefined, mode: number) => {
          for (const it of items ?? []) {
            if (!it.fieldRef) throw new Error(`volume ${v.name}: only fieldRef items are supported by the test kubelet`);
            files.set(it.path, { data: Buffer.from(this.fieldValue(w, it.fieldRef.fieldPath)), mode: it.mode ?? mode });
          }
        };
        if (v.configMap) add(v.configMap.items, await cmData(v.configMap.name, v.configMap.optional), v.configMap.defaultMode ?? 0o644);
        if (v.secret) add(v.secret.items, await secretData(v.secret.secretName, v.secret.optional), v.secret.defaultMode ?? 0o644);
        if (v.downwardAPI) downward(v.downwardAPI.items, v.downwardAPI.defaultMode ?? 0o644);
        if (v.projected) {
          const mode = v.projected.defaultMode ?? 0o644;
          for (const s of v.projected.sources) {
            if (s.configMap) add(s.configMap.items, await cmData(s.configMap.name, s.configMap.optional), mode);
            if (s.secret) add(s.secret.items, await secretData(s.secret.name, s.secret.optional), mode);
            if (s.downwardAPI) downward(s.downwardAPI.items, mode);
            if (s.serviceAccountToken) files.set(s.serviceAccountToken.path, { data: Buffer.from(await this.serviceAccountToken(w, s.serviceAccountToken)), mode });
          }
        }
        fs.mkdirSync(own, { recursive: true, mode: 0o755 });
        if (fsGroup !== undefined) fs.chownSync(own, 0, fsGroup);
        const written = prepared?.files ?? new Set<string>();
        for (const [rel, f] of files) {
          const file = path.join(own, rel);
          fs.mkdirSync(path.dirname(file), { recursive: true });
          let same = false;
          try {
            same = fs.readFileSync(file).equals(f.data);
          } catch {
            // new file
          }
          if (!same) fs.writeFileSync(file, f.data);
          fs.chmodSync(file, f.mode);
          if (fsGroup !== undefined) fs.chownSync(file, 0, fsGroup);
          written.add(rel);
        }
        for (const rel of [...written]) {
          if (files.has(rel)) continue;
          fs.rmSync(path.join(own, rel), { force: true });
          written.delete(rel);
        }
        w.volumes.set(v.name, { hostDir: own, files: written });
      } else {
        const kind = Object.keys(v).find((k) => k !== 'name') ?? 'unknown';
        throw new Error(`volume ${v.name}: ${kind} volumes are not supported by the test kubelet`);
      }
    }
  }

  private async serviceAccountToken(w: PodWorker, src: { path: string; audience?: string; expirationSeconds?: number }): Promise<string> {
    const key = `${src.path}|${src.audience ?? ''}`;
    const cached = w.tokens.get(key);
    if (cached && Date.now() < cached.refreshAt) return cached.token;
    const pod = w.pod;
    const expirationSeconds = src.expirationSeconds ?? 3600;
    const tr = await this.api.create<{ status: { token: string } }>(
      `/api/v1/namespaces/${pod.metadata.namespace}/serviceaccounts/${pod.spec.serviceAccountName ?? 'default'}/token`,
      {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: {
          audiences: src.audience ? [src.audience] : [],
          expirationSeconds,
          boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name, uid: pod.metadata.uid },
        },
      },
    );
    w.tokens.set(key, { token: tr.status.token, refreshAt: Date.now() + expirationSeconds * 800 });
    return tr.status.token;
  }

  // -------------------------------------------------------------------------------------------------------
  // Status and events

  private containerStatus(w: PodWorker, c: ContainerRun): { name: string; ready: boolean; state: ContainerState; lastState: ContainerState; [k: string]: unknown } {
    let state: ContainerState;
    let lastState: ContainerState = c.lastTerminated ? { terminated: c.lastTerminated } : {};
    if (c.running) state = { running: { startedAt: c.startedAt as string } };
    else if (c.terminated && c.willRestart && (c.backoffMs > 0 || c.waiting.reason !== 'CrashLoopBackOff') && !w.terminating && !w.terminated) {
      state = { waiting: c.waiting };
      lastState = { terminated: c.terminated };
    } else if (c.terminated) state = { terminated: c.terminated };
    else state = { waiting: c.waiting };
    return {
      name: c.name,
      image: c.spec.image,
      imageID: c.starts > 0 ? `etcd-ts-test-kubelet://${repoRoot()}` : '',
      ...(c.starts > 0 ? { containerID: c.containerID } : {}),
      ready: c.running && c.started && (c.spec.readinessProbe ? c.ready : true),
      started: c.running && c.started,
      restartCount: Math.max(0, c.starts - 1),
      state,
      lastState,
    };
  }

  private async patchStatus(w: PodWorker): Promise<void> {
    const pod = w.pod;
    const statuses = w.containers.map((c) => this.containerStatus(w, c));
    // The kubelet's getPhase.
    let running = 0;
    let waiting = 0;
    let stopped = 0;
    let succeeded = 0;
    for (const s of statuses) {
      if (s.state.running) running++;
      else if (s.state.terminated) {
        stopped++;
        if (s.state.terminated.exitCode === 0) succeeded++;
      } else if (s.lastState.terminated) stopped++;
      else waiting++;
    }
    const policy = pod.spec.restartPolicy ?? 'Always';
    let phase: string;
    if (w.terminated && running === 0) phase = stopped === succeeded ? 'Succeeded' : 'Failed';
    else if (waiting > 0) phase = 'Pending';
    else if (running > 0) phase = 'Running';
    else if (stopped > 0) phase = policy === 'Always' ? 'Running' : stopped === succeeded ? 'Succeeded' : policy === 'Never' ? 'Failed' : 'Running';
    else phase = 'Pending';

    const notReady = statuses.filter((s) => !s.ready).map((s) => s.name);
    const allReady = notReady.length === 0 && !w.terminated && !w.terminating;
    const reason = allReady ? undefined : w.terminated ? 'PodCompleted' : 'ContainersNotReady';
    const message = allReady || w.terminated ? undefined : `containers with unready status: [${notReady.join(' ')}]`;
    const managed = ['PodReadyToStartContainers', 'Initialized', 'ContainersReady', 'Ready'];
    const conditions: Condition[] = [
      w.condition('PodReadyToStartContainers', !!(w.sandbox || (pod.spec.hostNetwork && w.hostIP))),
      w.condition('Initialized', true),
      w.condition('ContainersReady', allReady, reason, message),
      w.condition('Ready', allReady, reason, message),
      ...(pod.status?.conditions ?? []).filter((c) => !managed.includes(c.type)),
    ];
    const ip = w.podIP;
    const status = {
      observedGeneration: pod.metadata.generation,
      phase,
      conditions,
      hostIP: w.hostIP,
      hostIPs: [{ ip: w.hostIP }],
      ...(ip ? { podIP: ip, podIPs: [{ ip }] } : {}),
      startTime: w.startTime,
      containerStatuses: statuses,
      ...(pod.status?.qosClass ? { qosClass: pod.status.qosClass } : {}),
    };
    if (!w.changed(status)) return;
    try {
      // The uid makes the patch fail (409/422) rather than change a new pod of the same name.
      await this.api.mergePatch(`/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}/status`, { metadata: { uid: pod.metadata.uid }, status });
    } catch (e) {
      w.forgetSentStatus();
      if (e instanceof ApiError && [404, 409, 422].includes(e.status)) return;
      this.log(`pod ${w.key}: status update: ${(e as Error).message}`);
    }
  }

  /** Records an Event about the pod (best effort). */
  private event(w: PodWorker, type: 'Normal' | 'Warning', reason: string, message: string, container?: string): void {
    const pod = w.pod;
    const t = now3339();
    const meta: Partial<ObjectMeta> = { generateName: `${pod.metadata.name}.`, namespace: pod.metadata.namespace };
    void this.api
      .create(`/api/v1/namespaces/${pod.metadata.namespace}/events`, {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: meta,
        involvedObject: {
          apiVersion: 'v1',
          kind: 'Pod',
          namespace: pod.metadata.namespace,
          name: pod.metadata.name,
          uid: pod.metadata.uid,
          ...(container ? { fieldPath: `spec.containers{${container}}` } : {}),
        },
        reason,
        message,
        type,
        source: { component: 'kubelet', host: this.nodeName },
        reportingComponent: 'kubelet',
        reportingInstance: this.nodeName,
        firstTimestamp: t,
        lastTimestamp: t,
        count: 1,
      })
      .catch(() => undefined);
  }
}
