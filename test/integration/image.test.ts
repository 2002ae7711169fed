// The container image without Docker: the runtime tree the Dockerfile's build stage stages (test/tools/image.sh,
// also run by `make image-stage` inside `docker build`), assembled with node and its shared libraries into a
// local root filesystem (`make image-rootfs`) and started the way a container runtime starts the image: PID 1 of
// a new PID namespace, chrooted into a read-only root, uid/gid 65532, no capabilities, no_new_privs, the
// Dockerfile's WORKDIR and ENV, a data volume bind-mounted where members mount theirs. Checks:
// - the Dockerfile's runtime stage and the local runner state the same user, workdir, PATH, entrypoint and tree;
// - the tree has no build tools and no devDependencies;
// - both entry points run inside, with clear errors for bad flags;
// - etcd-ts as PID 1 serves the reference etcdctl with RocksDB loaded inside, its data owned by 65532; SIGTERM
//   to PID 1 stops it with exit 0; a restart finds the data; kill -9 after acknowledged puts loses none;
// - test/kind/e2e.sh (which needs Docker) is valid bash, fails fast and clearly without Docker, and its
//   EtcdCluster manifest passes the operator's own spec validation.
// Needs root (namespaces, mounts, chroot), like the operator e2e's test kubelet.
import { type ChildProcess, spawn } from 'child_process';
import { EventEmitter } from 'events';
import * as fs from 'fs';
import * as path from 'path';
import { parse as parseYaml } from 'yaml';
import { API_VERSION, KIND, validateSpec } from '../../operator/api';
import { etcdctl, freePort, isHealthy, removeDir, repoRoot, run, tmpDataDir, trackChild } from '../helpers';

jest.setTimeout(300_000);

const IMAGE_SH = path.join(repoRoot(), 'test', 'tools', 'image.sh');
const E2E_KIND = path.join(repoRoot(), 'test', 'kind', 'e2e.sh');
const UID = 65532;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

let rootfs = '';
let settings: Record<string, string> = {};
const tempDirs: string[] = [];

beforeAll(async () => {
  if (process.getuid?.() !== 0) {
    throw new Error('the image test needs root: it starts the image in new PID and mount namespaces with chroot');
  }
  // Cached by a hash of the sources (`make test` builds it first); a cold build (two npm ci + tsc) takes ~1 min.
  const started = Date.now();
  const built = await run(IMAGE_SH, ['rootfs'], { timeoutMs: 280_000 });
  if (built.code !== 0) throw new Error(`image.sh rootfs failed (code ${built.code}):\n${built.stderr}`);
  rootfs = built.stdout.trim().split('\n').pop() ?? '';
  expect(fs.existsSync(path.join(rootfs, '.complete'))).toBe(true);
  console.log(`image test: rootfs ready in ${((Date.now() - started) / 1000).toFixed(1)} s at ${rootfs}`);
  const described = await run(IMAGE_SH, ['describe']);
  settings = Object.fromEntries(described.stdout.trim().split('\n').map((l) => l.split('=', 2) as [string, string]));
}, 300_000);

afterAll(() => {
  for (const d of tempDirs) removeDir(d);
});

/** Size of a tree in bytes (no symlink following). */
function treeBytes(dir: string): number {
  let total = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) total += treeBytes(p);
    else total += fs.lstatSync(p).size;
  }
  return total;
}

/** Every path under dir, relative to it. */
function walk(dir: string, base = dir, out: string[] = []): string[] {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    out.push(path.relative(base, p));
    if (entry.isDirectory()) walk(p, base, out);
  }
  return out;
}

/** The first executable named `name` on PATH, or undefined. */
function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

/** The runtime stage of the Dockerfile: its instructions (continuation lines joined), after the last FROM. */
function dockerfileRuntimeStage(): { from: string; args: Map<string, string>; lines: string[] } {
  const text = fs.readFileSync(path.join(repoRoot(), 'Dockerfile'), 'utf8');
  const joined = text
    .split('\n')
    .filter((l) => !l.trimStart().startsWith('#'))
    .join('\n')
    .replace(/\\\n\s*/g, ' ');
  const lines = joined.split('\n').map((l) => l.replace(/[ \t]+/g, ' ').trim()).filter((l) => l.length > 0);
  const args = new Map<string, string>();
  for (const l of lines) {
    const m = /^ARG (\w+)=(\S+)$/.exec(l);
    if (m) args.set(m[1], m[2]);
  }
  const lastFrom = lines.map((l, i) => (l.startsWith('FROM ') ? i : -1)).filter((i) => i >= 0).pop() ?? -1;
  return { from: lines[lastFrom] ?? '', args, lines: lines.slice(lastFrom + 1) };
}

test('the Dockerfile runtime stage and the local runner agree: base, user, workdir, env, entrypoint, copied tree', () => {
  const stage = dockerfileRuntimeStage();
  expect(stage.from).toBe('FROM ${RUNTIME_IMAGE}');
  expect(stage.args.get('RUNTIME_IMAGE')).toMatch(/\/distroless\/nodejs20-debian12:nonroot$/);
  const only = (prefix: string) => stage.lines.filter((l) => l.startsWith(prefix));
  expect(only('USER ')).toEqual([`USER ${settings.uid}:${settings.gid}`]);
  expect(only('WORKDIR ')).toEqual([`WORKDIR ${settings.workdir}`]);
  expect(only('ENTRYPOINT ')).toEqual([`ENTRYPOINT ["${settings.entrypoint}"]`]);
  expect(only('ENV ')).toEqual([`ENV PATH=${settings.path} HOME=${settings.home}`]);
  expect(only('EXPOSE ')).toEqual(['EXPOSE 2379 2380']);
  // The runtime stage copies exactly the staged tree: app and launchers root-owned, the workdir owned by the user.
  expect(only('COPY ')).toEqual([
    'COPY --from=build /out/app /app',
    'COPY --from=build /out/usr/local/bin/ /usr/local/bin/',
    `COPY --from=build --chown=${settings.uid}:${settings.gid} /out${settings.workdir} ${settings.workdir}`,
  ]);
  expect(only('RUN ')).toEqual([]); // no shell in the base image, and nothing to run
  const stageDir = rootfs.replace(/rootfs-([0-9a-f]+)$/, 'stage-$1');
  expect(fs.readdirSync(stageDir).filter((e) => e !== '.complete').sort()).toEqual(['app', 'usr', 'var']);
  expect(fs.readdirSync(path.join(stageDir, 'usr', 'local', 'bin')).sort()).toEqual(['etcd-ts', 'etcd-ts-operator']);
  // The build stage runs the one staging command, whose inputs the build context lets through.
  const text = fs.readFileSync(path.join(repoRoot(), 'Dockerfile'), 'utf8');
  expect(text).toMatch(/^RUN make image-stage IMAGE_STAGE=\/out$/m);
  const allowed = fs.readFileSync(path.join(repoRoot(), '.dockerignore'), 'utf8').split('\n').filter((l) => l.startsWith('!')).map((l) => l.slice(1));
  const copied = [...text.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1].split(/\s+/));
  // The build stage copies exactly what the staging reads (and the Makefile that runs it), all let through.
  expect([...copied].sort()).toEqual([...settings.sources.split(' '), 'Makefile'].sort());
  for (const src of copied) expect(allowed).toContain(src);
  // The launchers' shebang is the base image's node, which the local rootfs has at the same path.
  for (const bin of ['dist/src/bin/etcd-ts.js', 'dist/operator/main.js']) {
    expect(fs.readFileSync(path.join(rootfs, 'app', bin), 'utf8').split('\n')[0]).toBe(`#!${settings.node}`);
  }
  expect(fs.statSync(path.join(rootfs, settings.node)).mode & 0o111).not.toBe(0);
});

test('the staging commands: the make target the Dockerfile runs calls the script; bad input gets a clear error', async () => {
  const dry = await run('make', ['-s', '-n', 'image-stage', 'IMAGE_STAGE=/out'], { cwd: repoRoot() });
  expect(dry.code).toBe(0);
  expect(dry.stdout).toContain('test/tools/image.sh stage "/out"');
  const unset = await run('make', ['-s', 'image-stage'], { cwd: repoRoot() });
  expect(unset.code).not.toBe(0);
  expect(unset.stderr).toContain('make image-stage: set IMAGE_STAGE to a new or empty directory');
  const nonEmpty = await run(IMAGE_SH, ['stage', repoRoot()]);
  expect(nonEmpty.code).toBe(1);
  expect(nonEmpty.stderr).toBe(`image.sh: stage: ${repoRoot()} exists and is not empty\n`);
  const unknown = await run(IMAGE_SH, ['bogus']);
  expect(unknown.code).toBe(1);
  expect(unknown.stderr).toMatch(/^image\.sh: usage: image\.sh stage OUT \| rootfs \| run /);
});

test('the tree holds no build tools and no devDependencies; sizes', () => {
  const all = walk(rootfs);
  const buildTools = new Set(['gcc', 'cc', 'c++', 'g++', 'make', 'python', 'python3', 'npm', 'npx', 'yarn', 'corepack', 'tsc', 'node-gyp', 'ld', 'sh', 'bash']);
  expect(all.filter((p) => buildTools.has(path.basename(p)))).toEqual([]);
  const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot(), 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
    devDependencies: Record<string, string>;
  };
  const nm = path.join(rootfs, 'app', 'node_modules');
  const present = (name: string) => fs.existsSync(path.join(nm, name));
  expect(Object.keys(pkg.devDependencies).filter(present)).toEqual([]);
  expect(['typescript', 'jest', 'eslint', 'ts-jest', 'npm', 'node-gyp', '@types'].filter(present)).toEqual([]);
  expect(Object.keys(pkg.dependencies).filter((d) => !present(d))).toEqual([]);
  // RocksDB: only the prebuilt library for this platform; no C++ sources.
  const rocksdb = path.join(nm, '@nxtedition', 'rocksdb');
  expect(fs.existsSync(path.join(rocksdb, 'deps'))).toBe(false);
  expect(fs.readdirSync(path.join(rocksdb, 'prebuilds'))).toEqual([`${process.platform}-${process.arch}`]);
  // Only the programs' compiled code: no tests or benchmarks.
  expect(fs.readdirSync(path.join(rootfs, 'app', 'dist')).sort()).toEqual(['operator', 'src']);
  expect(all.filter((p) => /\.(ts|map)$/.test(p) && !p.endsWith('.d.ts'))).toEqual([]);
  const stageDir = rootfs.replace(/rootfs-([0-9a-f]+)$/, 'stage-$1');
  console.log(
    `image test: staged tree (what the runtime stage copies) ${mb(treeBytes(stageDir))}, node_modules ${mb(treeBytes(nm))}, ` +
      `dist ${mb(treeBytes(path.join(rootfs, 'app', 'dist')))}; local rootfs with node and libraries ${mb(treeBytes(rootfs))}`,
  );
});

test('both entry points run inside; bad flags exit non-zero with a clear message', async () => {
  const version = (JSON.parse(fs.readFileSync(path.join(repoRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  const v = await run(IMAGE_SH, ['run', rootfs, 'etcd-ts', '--version']);
  expect(v.stderr).toBe('');
  expect(v.code).toBe(0);
  expect(v.stdout).toMatch(new RegExp(`^etcd-ts Version: ${version.replace(/\./g, '\\.')}\n`));
  expect(v.stdout).toMatch(/\nOS\/Arch: linux\/x64\n?$/);

  const help = await run(IMAGE_SH, ['run', rootfs, 'etcd-ts-operator', '--help']);
  expect(help.code).toBe(0);
  expect(help.stdout + help.stderr).toMatch(/^Usage: etcd-ts-operator \[flags\]\n/);

  const badOperator = await run(IMAGE_SH, ['run', rootfs, 'etcd-ts-operator', '--no-such-flag']);
  expect(badOperator.code).not.toBe(0);
  expect(badOperator.stderr).toMatch(/^etcd-ts-operator: unknown flag --no-such-flag\n/);

  const badNode = await run(IMAGE_SH, ['run', rootfs, 'etcd-ts', '--no-such-flag']);
  expect(badNode.code).not.toBe(0);
  expect(badNode.stderr).toBe('etcd-ts: flag provided but not defined: --no-such-flag (see --help)\n');

  // What the image does not have is not reachable: no shell, and nothing of the host outside the rootfs.
  const noShell = await run(IMAGE_SH, ['run', rootfs, '/bin/sh', '-c', 'true']);
  expect(noShell.code).not.toBe(0);
  expect(noShell.stderr).toMatch(/\/bin\/sh.*No such file or directory/);
  // The runner's own input checks.
  const badVolume = await run(IMAGE_SH, ['run', '-v', 'relative:/x', rootfs, 'etcd-ts', '--version']);
  expect(badVolume.code).toBe(1);
  expect(badVolume.stderr).toMatch(/-v needs HOST:CONTAINER with absolute paths, got 'relative:\/x'/);
  const notRootfs = await run(IMAGE_SH, ['run', repoRoot(), 'etcd-ts', '--version']);
  expect(notRootfs.code).toBe(1);
  expect(notRootfs.stderr).toMatch(/is not a rootfs made by 'image.sh rootfs'/);
});

/** etcd-ts started from the rootfs like a container: the host side is the runner; `initPid` is PID 1 inside. */
class ImageMember {
  private log = '';
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  initPid = 0;

  private constructor(
    readonly proc: ChildProcess,
    readonly clientPort: number,
  ) {
    proc.stdout?.on('data', (d: Buffer) => (this.log = (this.log + d.toString('utf8')).slice(-20_000)));
    proc.stderr?.on('data', (d: Buffer) => (this.log = (this.log + d.toString('utf8')).slice(-20_000)));
    this.exited = new Promise((resolve) =>
      proc.once('close', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      }),
    );
  }

  static async start(volume: string, clientPort: number, peerPort: number): Promise<ImageMember> {
    const client = `http://127.0.0.1:${clientPort}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    // The flags the operator gives members, on loopback ports, and the data dir inside the mounted volume.
    const proc = spawn(
      IMAGE_SH,
      ['run', '-v', `${volume}:/var/lib/etcd-ts`, rootfs, 'etcd-ts', '--name=m1', '--data-dir=/var/lib/etcd-ts/data',
        `--listen-client-urls=${client}`, `--advertise-client-urls=${client}`, `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`, `--initial-cluster=m1=${peer}`],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    trackChild(proc);
    const m = new ImageMember(proc, clientPort);
    // The runner execs into `unshare --fork`, whose one child becomes PID 1 of the new namespace (and then execs
    // down to node). Found through /proc, it is what a container runtime signals.
    const deadline = Date.now() + 10_000;
    while (m.initPid === 0) {
      try {
        // Before the runner's exec, its children are short-lived subshells: take only a child that is PID 1 of
        // a nested PID namespace.
        const children = fs.readFileSync(`/proc/${proc.pid}/task/${proc.pid}/children`, 'utf8').trim().split(' ').filter(Boolean);
        for (const c of children) {
          const nspid = /^NSpid:\s+(.*)$/m.exec(fs.readFileSync(`/proc/${c}/status`, 'utf8'))?.[1].split(/\s+/) ?? [];
          if (nspid.length === 2 && nspid[1] === '1') m.initPid = Number(c);
        }
      } catch {
        // not there yet, or the runner already exited (checked below)
      }
      if (m.initPid === 0) {
        if (m.exitInfo || Date.now() > deadline) throw new Error(`the runner started no PID 1 (exit ${JSON.stringify(m.exitInfo)}):\n${m.log}`);
        await sleep(20);
      }
    }
    // The PID 1 process drops its parent-death signal when it changes to uid 65532, so the runner's
    // --kill-child would not reach it if this worker died: track it too (the reaper SIGKILLs it, which ends
    // the whole namespace). trackChild only needs a pid and an 'exit' event.
    const proxy = Object.assign(new EventEmitter(), { pid: m.initPid });
    trackChild(proxy as unknown as ChildProcess);
    proc.once('close', () => proxy.emit('exit'));
    try {
      await m.waitHealthy(30_000);
    } catch (e) {
      m.kill('SIGKILL');
      await m.waitExit(10_000).catch(() => undefined);
      throw e;
    }
    return m;
  }

  logText(): string {
    return this.log;
  }

  get endpoint(): string {
    return `127.0.0.1:${this.clientPort}`;
  }

  async waitHealthy(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await isHealthy(`http://${this.endpoint}`))) {
      if (this.exitInfo) throw new Error(`etcd-ts in the image exited (${JSON.stringify(this.exitInfo)}) before it was healthy:\n${this.log}`);
      if (Date.now() > deadline) throw new Error(`etcd-ts in the image not healthy after ${timeoutMs} ms:\n${this.log}`);
      await sleep(100);
    }
  }

  /** Signals PID 1 of the namespace from outside, as `docker stop` / `docker kill` do. */
  kill(signal: NodeJS.Signals): void {
    if (this.exitInfo) return;
    try {
      process.kill(this.initPid, signal);
    } catch (e) {
      // PID 1 gone while the runner is still reporting its exit: nothing left to signal.
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
    }
  }

  async waitExit(timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.exited,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`etcd-ts in the image did not exit within ${timeoutMs} ms:\n${this.log}`)), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  status(): Record<string, string> {
    const text = fs.readFileSync(`/proc/${this.initPid}/status`, 'utf8');
    return Object.fromEntries(text.trim().split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]));
  }
}

test('etcd-ts as PID 1, uid 65532, read-only root: serves etcdctl, stops on SIGTERM, keeps acknowledged data across restart and kill -9', async () => {
  const volume = tmpDataDir('etcd-ts-image-vol-');
  tempDirs.push(volume);
  fs.chownSync(volume, UID, UID); // a fresh volume as fsGroup/the runtime leaves it: owned by the user
  const clientPort = await freePort();
  const peerPort = await freePort();

  let t0 = Date.now();
  let m = await ImageMember.start(volume, clientPort, peerPort);
  console.log(`image test: etcd-ts healthy ${Date.now() - t0} ms after start (PID 1 in its namespace)`);
  try {
    // What the container runtime would have set up: PID 1, uid/gid 65532 with no supplementary groups, no
    // capabilities, no_new_privs, the rootfs as its root, and node from the image running the RocksDB binding.
    const st = m.status();
    expect(st.NSpid.split(/\s+/)).toEqual([String(m.initPid), '1']);
    expect(st.Uid.split(/\s+/)).toEqual([String(UID), String(UID), String(UID), String(UID)]);
    expect(st.Gid.split(/\s+/)).toEqual([String(UID), String(UID), String(UID), String(UID)]);
    expect(st.Groups).toBe('');
    expect(st.CapEff).toBe('0000000000000000');
    expect(st.NoNewPrivs).toBe('1');
    expect(fs.readlinkSync(`/proc/${m.initPid}/root`)).toBe(rootfs);
    // Its working directory is the WORKDIR, with the volume mounted there (same directory as the host's).
    const cwd = fs.statSync(`/proc/${m.initPid}/cwd`);
    const vol = fs.statSync(volume);
    expect([cwd.dev, cwd.ino]).toEqual([vol.dev, vol.ino]);
    expect(fs.readlinkSync(`/proc/${m.initPid}/cwd`)).toBe(path.join(rootfs, settings.workdir));
    expect(fs.readlinkSync(`/proc/${m.initPid}/exe`)).toBe(path.join(rootfs, settings.node));
    const maps = fs.readFileSync(`/proc/${m.initPid}/maps`, 'utf8');
    expect(maps).toContain(path.join(rootfs, 'app', 'node_modules', '@nxtedition', 'rocksdb', 'prebuilds'));
    // The root filesystem is read-only for it (readOnlyRootFilesystem, as members run).
    const mounts = fs.readFileSync(`/proc/${m.initPid}/mounts`, 'utf8').split('\n');
    expect(mounts.find((l) => l.split(' ')[1] === '/')?.split(' ')[3].split(',')).toContain('ro');

    const put = await etcdctl(m.endpoint, ['put', 'image/key', 'v1']);
    expect(put.stderr).toBe('');
    expect(put.stdout).toBe('OK\n');
    const get = await etcdctl(m.endpoint, ['get', 'image/key', '--print-value-only']);
    expect(get.stdout).toBe('v1\n');
    // The data dir was created by the runtime user.
    const dataFiles = walk(path.join(volume, 'data'));
    expect(dataFiles.length).toBeGreaterThan(0);
    expect(dataFiles.filter((f) => fs.lstatSync(path.join(volume, 'data', f)).uid !== UID)).toEqual([]);

    // SIGTERM to PID 1 (docker stop): graceful stop, exit 0, promptly.
    t0 = Date.now();
    m.kill('SIGTERM');
    const stopped = await m.waitExit(15_000);
    const stopMs = Date.now() - t0;
    console.log(`image test: SIGTERM to PID 1 → exit ${stopped.code} in ${stopMs} ms`);
    expect(stopped).toEqual({ code: 0, signal: null });
    expect(stopMs).toBeLessThan(10_000);
    // Its own handler ran (PID 1 ignores SIGTERM unless the program handles it).
    expect(m.logText()).toMatch(/"signal":"SIGTERM".*"msg":"received signal; shutting down"/);

    // A restart on the same volume finds the data.
    m = await ImageMember.start(volume, clientPort, peerPort);
    expect((await etcdctl(m.endpoint, ['get', 'image/key', '--print-value-only'])).stdout).toBe('v1\n');

    // kill -9 right after acknowledged puts: none is lost.
    const acked: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await etcdctl(m.endpoint, ['put', `image/acked/${i}`, `value-${i}`]);
      expect(r.stdout).toBe('OK\n');
      acked.push(`image/acked/${i}`);
    }
    m.kill('SIGKILL');
    const killed = await m.waitExit(15_000);
    // Docker would report 137. The runner cannot: util-linux 2.38's unshare fails to re-raise the child's
    // signal ("sigprocmask unblock failed") and exits 1, later versions die by the same signal. Either way it
    // is a failure, and PID 1 (with its whole namespace) is gone.
    expect(killed.signal === 'SIGKILL' || (killed.code !== null && killed.code !== 0)).toBe(true);
    expect(fs.existsSync(`/proc/${m.initPid}`)).toBe(false);
    m = await ImageMember.start(volume, clientPort, peerPort);
    const all = await etcdctl(m.endpoint, ['get', 'image/acked/', '--prefix', '--keys-only']);
    expect(all.stdout.split('\n').filter((l) => l.length > 0).sort()).toEqual([...acked].sort());
    expect((await etcdctl(m.endpoint, ['get', 'image/acked/19', '--print-value-only'])).stdout).toBe('value-19\n');
  } finally {
    m.kill('SIGKILL');
    await m.waitExit(15_000).catch(() => undefined);
  }
  // The runner's mounts lived in its own mount namespace: none is left on the host.
  expect(fs.readFileSync('/proc/self/mounts', 'utf8')).not.toContain(rootfs);
});

test('test/kind/e2e.sh: valid bash, fails fast and clearly without Docker; its EtcdCluster passes the operator\'s validation', async () => {
  const syntax = await run('bash', ['-n', E2E_KIND]);
  expect(syntax.stderr).toBe('');
  expect(syntax.code).toBe(0);

  // No docker on PATH at all: a PATH holding only the few tools the script needs before its Docker check.
  const noDockerPath = fs.mkdtempSync(path.join(tmpDataDir('etcd-ts-nodocker-'), 'bin-'));
  tempDirs.push(path.dirname(noDockerPath));
  for (const tool of ['bash', 'env', 'dirname', 'date', 'grep', 'tail', 'timeout']) {
    const found = onPath(tool);
    if (!found) throw new Error(`${tool} not found on PATH`);
    fs.symlinkSync(found, path.join(noDockerPath, tool));
  }
  let t0 = Date.now();
  const missing = await run(E2E_KIND, [], { env: { PATH: noDockerPath }, timeoutMs: 10_000 });
  expect(missing.code).toBe(1);
  expect(missing.stderr).toMatch(/^e2e-kind: error: docker not found on PATH\. make e2e-kind needs a Docker engine/);
  expect(Date.now() - t0).toBeLessThan(5_000);

  // A docker client with no engine behind it (a socket that does not exist makes it certain, engine or not).
  if (onPath('docker')) {
    t0 = Date.now();
    const noEngine = await run(E2E_KIND, [], { env: { DOCKER_HOST: 'unix:///nonexistent/docker.sock' }, timeoutMs: 30_000 });
    expect(noEngine.code).toBe(1);
    expect(noEngine.stderr).toMatch(/^e2e-kind: error: cannot reach the Docker engine \('docker info' failed: .*nonexistent\/docker\.sock/);
    expect(Date.now() - t0).toBeLessThan(25_000);
  }

  // The manifest it applies is an EtcdCluster the operator accepts, named as the script expects.
  const manifest = parseYaml(fs.readFileSync(path.join(repoRoot(), 'test', 'kind', 'etcdcluster.yaml'), 'utf8')) as {
    apiVersion: string;
    kind: string;
    metadata: { name: string; namespace?: string };
    spec: { replicas: number };
  };
  expect(manifest.apiVersion).toBe(API_VERSION);
  expect(manifest.kind).toBe(KIND);
  expect(manifest.metadata.namespace).toBeUndefined(); // e2e.sh applies it with -n
  expect(validateSpec(manifest.spec)).toEqual([]);
  expect(manifest.spec.replicas).toBe(3);
  expect(fs.readFileSync(E2E_KIND, 'utf8')).toMatch(new RegExp(`^name="${manifest.metadata.name}" `, 'm'));
});
