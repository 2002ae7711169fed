// Long-running etcdctl processes for tests (lock holders, election candidates, observers): output is
// collected as it comes, and coreutils `timeout` bounds each one's life even if jest dies.
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import { NodeHandle, toolPath } from './procs';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls pred (bounded): resolves once it holds, fails with `what` after timeoutMs. */
export async function until(pred: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

const liveCtls = new Set<Ctl>();

/** SIGTERMs every etcdctl still running and waits for them (call from afterEach). */
export async function stopAllCtls(): Promise<void> {
  for (const c of [...liveCtls]) c.term();
  await Promise.all([...liveCtls].map((c) => c.exited));
}

export class Ctl {
  private readonly child: ChildProcess;
  private out = '';
  private err = '';
  readonly exited: Promise<{ code: number | null; stdout: string; stderr: string }>;
  done = false;

  constructor(endpoint: string, args: string[], lifetimeS = 60) {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('ETCDCTL_')) env[k] = v;
    this.child = spawn('timeout', ['-k', '2', `${lifetimeS}s`, toolPath('etcdctl'), `--endpoints=${endpoint}`, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    this.child.stdout?.on('data', (d: Buffer) => (this.out += d.toString()));
    this.child.stderr?.on('data', (d: Buffer) => (this.err += d.toString()));
    liveCtls.add(this);
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code) => {
        this.done = true;
        liveCtls.delete(this);
        resolve({ code, stdout: this.out, stderr: this.err });
      });
    });
  }

  get stdout(): string {
    return this.out;
  }

  async waitOutput(pred: (stdout: string) => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    await until(() => pred(this.out) || this.done, what, timeoutMs);
    if (!pred(this.out)) throw new Error(`etcdctl exited before ${what}:\n${this.out}\n${this.err}`);
  }

  /** SIGTERM, which `timeout` passes on: etcdctl unlocks / resigns / stops observing, and exits. */
  term(): void {
    if (!this.done) this.child.kill('SIGTERM');
  }

  /** SIGKILL to etcdctl itself (the child of `timeout`): it dies without unlocking. */
  async kill9(): Promise<void> {
    const pid = this.child.pid as number;
    let etcdctlPid = 0;
    await until(() => {
      const children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
      etcdctlPid = Number(children.split(/\s+/)[0] || 0);
      return etcdctlPid > 0;
    }, 'the etcdctl process under timeout');
    process.kill(etcdctlPid, 'SIGKILL');
  }
}

/**
 * Replaces what two independent clusters legitimately differ in: cluster and member ids, lease ids
 * (decimal, and hex inside keys; labelled in order of first appearance) and revisions (relative to
 * the scenario's starting revision).
 */
export function normalizeRecipeTranscript(lines: string[], baseRev: number): string[] {
  let text = lines.join('\n');
  const found: { at: number; id: bigint }[] = [];
  for (const m of text.matchAll(/"(?:lease|ID)":"(\d+)"/g)) if (m[1] !== '0') found.push({ at: m.index ?? 0, id: BigInt(m[1]) });
  for (const m of text.matchAll(/\/([0-9a-f]{8,16})(?![0-9a-f])/g)) found.push({ at: (m.index ?? 0) + 1, id: BigInt('0x' + m[1]) });
  found.sort((a, b) => a.at - b.at);
  const labels = new Map<bigint, string>();
  for (const f of found) if (!labels.has(f.id)) labels.set(f.id, `<lease${labels.size + 1}>`);
  for (const [id, label] of labels) {
    text = text.replace(new RegExp(`(?<![0-9])${id.toString()}(?![0-9])`, 'g'), label);
    text = text.replace(new RegExp(`(?<![0-9a-f])${id.toString(16)}(?![0-9a-f])`, 'g'), label);
  }
  text = text.replace(/"cluster_id":"\d+"/g, '"cluster_id":"<cluster>"').replace(/"member_id":"\d+"/g, '"member_id":"<member>"');
  text = text.replace(/("(?:revision|create_revision|mod_revision|rev)":)"(\d+)"/g, (_m, k: string, v: string) => `${k}"base+${Number(v) - baseRev}"`);
  text = text.replace(/\brev=(\d+)/g, (_m, v: string) => `rev=base+${Number(v) - baseRev}`);
  return text.split('\n');
}

/** Runs a scenario on etcd-ts and on the reference etcd; their normalised transcripts must be equal. */
export async function sameTranscript(
  ts: NodeHandle,
  ref: NodeHandle,
  scenario: (node: NodeHandle) => Promise<{ lines: string[]; baseRev: number }>,
): Promise<string[]> {
  const [t, r] = await Promise.all([scenario(ts), scenario(ref)]);
  const tsLines = normalizeRecipeTranscript(t.lines, t.baseRev);
  expect(tsLines).toEqual(normalizeRecipeTranscript(r.lines, r.baseRev));
  return tsLines;
}
