#!/usr/bin/env node
// Renders BENCHMARKS.md from the raw results bench/run.sh collects, and prints
// the hot spots of a V8 CPU profile.
//
//   node bench/report.js OUT.md                  (called by bench/run.sh; reads BENCH_* env)
//   node bench/report.js --profile-top FILE.cpuprofile [N]
//
// Inputs (environment, set by run.sh):
//   BENCH_RESULTS   dir with manifest.tsv, servers.tsv, profiles.tsv and the benchmark outputs; for
//                   the 3-member clusters cluster.tsv, cluster-members.tsv, cluster-info.tsv and
//                   cluster-warnings.<target>.log
//   BENCH_BIN_DIR   reference tools dir (for `etcd --version`)
//   BENCH_TARGETS   targets in run order
//   BENCH_ELAPSED   seconds the runs took
//   BENCH_LOADAVG   /proc/loadavg when the run started
//   BENCH_LOADAVG_END        /proc/loadavg when the runs were done
//   BENCH_CLUSTER_ELAPSED    seconds the 3-member cluster runs took (empty when not run)
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');

const ROOT = path.resolve(__dirname, '..');

// ------------------------------------------------------------ benchmark output

/** Parses one summary `benchmark` prints; latencies in milliseconds. */
function parseSummary(text) {
  const num = (re) => {
    const m = text.match(re);
    return m ? Number(m[1]) : undefined;
  };
  const secs = (label) => {
    const v = num(new RegExp(`^\\s*${label}:\\s*([0-9.eE+-]+) secs`, 'm'));
    return v === undefined ? undefined : v * 1000;
  };
  const pct = (p) => {
    const v = num(new RegExp(`^\\s*${p.replace('.', '\\.')}% in ([0-9.eE+-]+) secs`, 'm'));
    return v === undefined ? undefined : v * 1000;
  };
  const errors = [];
  const ed = text.split(/^Error distribution:\s*$/m)[1];
  if (ed) {
    for (const line of ed.split('\n')) {
      const m = line.match(/^\s*\[(\d+)\]\s*(.*)$/);
      if (m) errors.push({ count: Number(m[1]), error: m[2] });
    }
  }
  const r = {
    totalSecs: num(/^\s*Total:\s*([0-9.eE+-]+) secs/m),
    rps: num(/^\s*Requests\/sec:\s*([0-9.eE+-]+)/m),
    avg: secs('Average'),
    slowest: secs('Slowest'),
    fastest: secs('Fastest'),
    p50: pct('50'),
    p90: pct('90'),
    p99: pct('99'),
    p999: pct('99.9'),
    errors,
  };
  if (r.rps === undefined || r.avg === undefined) throw new Error('no benchmark summary found');
  return r;
}

/**
 * Parses a `benchmark` output into its summaries, keyed by heading. Most subcommands print
 * one unnamed summary (key ''); watch prints "Watch creation summary:" and "Watch events
 * received summary:", watch-latency "Put summary:" and "Watch events summary:" (key = the
 * heading without " summary:").
 */
function parseBenchmark(text, file = 'benchmark output') {
  const heading = /^(\S.*) summary:[ \t]*$/gm;
  const marks = [...text.matchAll(heading)];
  const out = {};
  try {
    if (marks.length === 0) {
      out[''] = parseSummary(text);
    } else {
      marks.forEach((m, i) => {
        const end = i + 1 < marks.length ? marks[i + 1].index : text.length;
        out[m[1]] = parseSummary(text.slice(m.index + m[0].length, end));
      });
    }
  } catch (err) {
    throw new Error(`${file}: ${err.message}`);
  }
  return out;
}

// ------------------------------------------------------------ CPU profile

/** Decodes a source map's `mappings` into per-generated-line sorted segments. */
function decodeMappings(mappings) {
  const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const val = new Map([...B64].map((c, i) => [c, i]));
  const lines = [];
  let src = 0, oLine = 0; // (source column and name fields are decoded but not needed)
  for (const lineStr of mappings.split(';')) {
    const segs = [];
    let gCol = 0;
    if (lineStr) {
      for (const segStr of lineStr.split(',')) {
        const fields = [];
        let shift = 0, acc = 0;
        for (const ch of segStr) {
          const d = val.get(ch);
          acc += (d & 31) << shift;
          if (d & 32) { shift += 5; continue; }
          fields.push(acc & 1 ? -(acc >>> 1) : acc >>> 1);
          shift = 0; acc = 0;
        }
        gCol += fields[0];
        if (fields.length >= 4) {
          src += fields[1]; oLine += fields[2];
          segs.push([gCol, src, oLine]);
        }
      }
    }
    lines.push(segs);
  }
  return lines;
}

const sourceMaps = new Map();
/** Maps a 0-based generated (line, column) of a local .js file to { file, line } (1-based) via its .map. */
function mapLocation(file, line, col) {
  if (!sourceMaps.has(file)) {
    let sm = null;
    try {
      const raw = JSON.parse(fs.readFileSync(`${file}.map`, 'utf8'));
      sm = { sources: raw.sources, lines: decodeMappings(raw.mappings) };
    } catch {
      sm = null;
    }
    sourceMaps.set(file, sm);
  }
  const sm = sourceMaps.get(file);
  if (!sm || !sm.lines[line]) return null;
  let best = null;
  for (const seg of sm.lines[line]) {
    if (seg[0] <= col) best = seg;
    else break;
  }
  best ??= sm.lines[line][0];
  if (!best) return null;
  return { file: path.basename(sm.sources[best[1]]), line: best[2] + 1 };
}

/** Short, machine-independent location: `basename:line`, source-mapped when possible. */
function describeLocation(cf) {
  const url = cf.url || '';
  if (!url) return '(no source url)';
  if (url.startsWith('node:')) return `${url}:${cf.lineNumber + 1}`;
  let file = url;
  if (url.startsWith('file://')) {
    try { file = require('url').fileURLToPath(url); } catch { /* keep url */ }
  }
  const nm = file.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const parts = file.slice(nm + 'node_modules/'.length).split('/');
    const pkg = parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
    return `${path.basename(file)}:${cf.lineNumber + 1} (${pkg})`;
  }
  const mapped = file.endsWith('.js') ? mapLocation(file, cf.lineNumber, cf.columnNumber) : null;
  if (mapped) return `${mapped.file}:${mapped.line}`;
  return `${path.basename(file)}:${cf.lineNumber + 1}`;
}

/** Self time per function (aggregated over identical call frames) from a .cpuprofile. */
function profileTop(file) {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const selfUs = new Map();
  let total = 0;
  const samples = prof.samples || [];
  const deltas = prof.timeDeltas || [];
  for (let i = 0; i < samples.length; i++) {
    // timeDeltas[i] precedes sample i; the time until the next sample is attributed to sample i.
    const dt = i + 1 < deltas.length ? Math.max(0, deltas[i + 1]) : 0;
    selfUs.set(samples[i], (selfUs.get(samples[i]) || 0) + dt);
    total += dt;
  }
  // The nearest caller in etcd-ts's own code (a local file outside node_modules), so that time in
  // Node internals, native code and dependencies is traced back to the code that asked for it.
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children || []) parent.set(c, n.id);
  const isOwn = (cf) => {
    const url = cf.url || '';
    return (url.startsWith('file://') || url.startsWith('/')) && !url.includes('/node_modules/');
  };
  const ownCaller = new Map();
  const callerOf = (id) => {
    if (ownCaller.has(id)) return ownCaller.get(id);
    let p = parent.get(id);
    while (p !== undefined && !isOwn(byId.get(p).callFrame)) p = parent.get(p);
    const cf = p === undefined ? undefined : byId.get(p).callFrame;
    const c = cf ? `${cf.functionName || '(anonymous)'} (${describeLocation(cf)})` : undefined;
    ownCaller.set(id, c);
    return c;
  };
  const agg = new Map();
  const special = { '(idle)': 0, '(program)': 0, '(garbage collector)': 0 };
  for (const [id, us] of selfUs) {
    const cf = byId.get(id).callFrame;
    const fn = cf.functionName || '(anonymous)';
    if (fn in special && !cf.url) { special[fn] += us; continue; }
    const loc = describeLocation(cf);
    const key = `${fn}\u0000${loc}`;
    const e = agg.get(key) || { fn, loc, us: 0, callers: new Map() };
    e.us += us;
    const c = callerOf(id) || '(none)';
    e.callers.set(c, (e.callers.get(c) || 0) + us);
    agg.set(key, e);
  }
  const fns = [...agg.values()].sort((a, b) => b.us - a.us);
  for (const e of fns) {
    const [caller, us] = [...e.callers.entries()].sort((a, b) => b[1] - a[1])[0];
    e.caller = caller;
    e.callerShare = e.us > 0 ? us / e.us : 0;
  }
  const byFile = new Map();
  for (const e of fns) {
    const f = e.loc.replace(/:\d+( \(.*\))?$/, '$1');
    byFile.set(f, (byFile.get(f) || 0) + e.us);
  }
  const files = [...byFile.entries()].map(([f, us]) => ({ f, us })).sort((a, b) => b.us - a.us);
  const durationUs = (prof.endTime || 0) - (prof.startTime || 0);
  return { total, durationUs, special, fns, files, samples: samples.length };
}

const pctOf = (us, total) => (total > 0 ? (100 * us) / total : 0);
const fmtPct = (x) => `${x.toFixed(1)}%`;

// ------------------------------------------------------------ machine info

function sh(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20000 }).trim();
  } catch {
    return '';
  }
}

function machineInfo(binDir) {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = (cpuinfo.match(/^model name\s*:\s*(.*)$/m) || [])[1] || os.cpus()[0]?.model || 'unknown';
  const mhz = (cpuinfo.match(/^cpu MHz\s*:\s*(.*)$/m) || [])[1];
  const meminfo = fs.readFileSync('/proc/meminfo', 'utf8');
  const memKb = Number((meminfo.match(/^MemTotal:\s*(\d+)/m) || [])[1] || 0);
  let osName = os.type();
  try {
    osName = (fs.readFileSync('/etc/os-release', 'utf8').match(/^PRETTY_NAME="?([^"\n]*)"?$/m) || [])[1] || osName;
  } catch { /* keep os.type() */ }
  const etcdVersion = sh(path.join(binDir, 'etcd'), ['--version']);
  const goLocal = sh('go', ['version']).replace(/^go version /, '');
  const gitRev = sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']);
  const dirty = sh('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no']) !== '';
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  return {
    cpu: `${model}${mhz ? ` (${Math.round(Number(mhz))} MHz)` : ''}`,
    cores: os.availableParallelism ? os.availableParallelism() : os.cpus().length,
    mem: `${(memKb / 1024 / 1024).toFixed(1)} GiB`,
    os: `${osName}, Linux ${os.release()} ${os.arch()}`,
    node: process.version,
    go: goLocal || 'not installed',
    etcd: (etcdVersion.match(/etcd Version:\s*(\S+)/) || [])[1] || 'unknown',
    etcdGo: (etcdVersion.match(/Go Version:\s*(\S+)/) || [])[1] || 'unknown',
    etcdTs: `${pkg.version}${gitRev ? ` (commit ${gitRev}${dirty ? ' + uncommitted changes' : ''})` : ''}`,
  };
}

// ------------------------------------------------------------ rendering

function readTsv(file) {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => l.split('\t'));
}

const fmtRps = (x) => (x === undefined ? '—' : Math.round(x).toLocaleString('en-US'));
function fmtMs(x) {
  if (x === undefined) return '—';
  if (x >= 100) return x.toFixed(0);
  if (x >= 10) return x.toFixed(1);
  if (x >= 1) return x.toFixed(2);
  return x.toFixed(3);
}
function fmtRatio(a, b) {
  if (a === undefined || b === undefined || !(b > 0)) return '—';
  const r = a / b;
  return `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`;
}

/** Distinct warn/error log messages of a cluster run: [{ phase, msg, count, members }], by phase then count. */
function warningDigest(file) {
  if (!fs.existsSync(file)) return [];
  const byKey = new Map();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const [member, phase, ...rest] = line.split('\t');
    const text = rest.join('\t');
    let msg;
    try {
      const j = JSON.parse(text);
      msg = String(j.msg ?? text);
      // etcd's "…failed" lines are only told apart by their error.
      if (j.error && /fail|lost|error|inactive|closed/i.test(msg)) msg += ` (${String(j.error).replace(/[0-9a-f]{16}|\d+\.\d+\.\d+\.\d+:\d+/g, '…')})`;
    } catch {
      msg = text;
    }
    msg = msg.replace(/\s+/g, ' ').trim();
    if (msg.length > 160) msg = `${msg.slice(0, 157)}…`;
    const key = `${phase}\u0000${msg}`;
    const e = byKey.get(key) || { phase, msg, count: 0, members: new Set() };
    e.count++;
    e.members.add(member);
    byKey.set(key, e);
  }
  const order = { start: 0, run: 1, stop: 2 };
  return [...byKey.values()].sort((a, b) => (order[a.phase] ?? 9) - (order[b.phase] ?? 9) || b.count - a.count);
}

/** The "3-member cluster" section. */
function renderCluster(L, ctx) {
  const { targets, base, cand, haveBoth, clusterConfigs, clusterResults, clusterCommands, clusterMembers, clusterLeaders, resultsDir, cfgTitle } = ctx;
  const esc = (x) => String(x).replace(/\|/g, '\\|');
  const wlName = { put: 'put', 'range-l': 'range, linearizable', 'range-s': 'range, serializable' };
  L.push('## 3-member cluster');
  L.push('');
  L.push('For each target, in the same order, a fresh 3-member cluster (members `m1`..`m3`) is started on free 127.0.0.1');
  L.push('ports with fresh temporary data dirs and a unique `--initial-cluster-token`; once `/health` answers on all three');
  L.push('members, the range key is written (`etcdctl put`) and the workloads below run in the order shown, each given all');
  L.push('three client endpoints (`benchmark` spreads its connections over them round-robin, so writes sent to a follower');
  L.push('are forwarded to the leader, and serializable reads are answered by whichever member got them). The leader and');
  L.push('each member\'s counters are then read from `/metrics`, and all three members are stopped (SIGTERM) together.');
  L.push('All three members and the client share the machine\'s cores.');
  L.push('');
  L.push('```sh');
  const flags = (m, i) => `--name=${m} --data-dir=<tmp>/${m} \\\n    --listen-client-urls=http://127.0.0.1:<client-port-${i}> --advertise-client-urls=http://127.0.0.1:<client-port-${i}> \\\n    --listen-peer-urls=http://127.0.0.1:<peer-port-${i}> --initial-advertise-peer-urls=http://127.0.0.1:<peer-port-${i}> \\\n    --initial-cluster=m1=http://127.0.0.1:<peer-port-1>,m2=http://127.0.0.1:<peer-port-2>,m3=http://127.0.0.1:<peer-port-3> \\\n    --initial-cluster-token=<unique> --initial-cluster-state=new`;
  L.push('# member m1 (m2 and m3 alike, with their own name, data dir and ports)');
  if (targets.includes('etcd')) L.push(`etcd ${flags('m1', 1)}`);
  if (targets.includes('etcd-ts')) L.push(`node dist/src/bin/etcd-ts.js ${flags('m1', 1)}`);
  L.push('```');
  L.push('');
  L.push('```sh');
  for (const c of clusterConfigs) {
    L.push(`# ${cfgTitle[c] || c}`);
    for (const cmd of Object.values(clusterCommands[c])) L.push(cmd);
  }
  L.push('```');
  L.push('');
  L.push('Rates in requests per second, latencies in milliseconds as measured by the client; ratios are etcd-ts / etcd.');
  L.push('');
  const cols = targets.filter((t) => clusterConfigs.some((c) => Object.values(clusterResults[c]).some((r) => r[t])));
  const hdr = ['Configuration', 'Workload'];
  const align = ['---', '---'];
  for (const label of ['req/s', 'p50', 'p99']) {
    for (const t of cols) { hdr.push(`${t} ${label}`); align.push('---:'); }
    if (haveBoth) { hdr.push(`${label} ratio`); align.push('---:'); }
  }
  L.push(`| ${hdr.join(' | ')} |`);
  L.push(`|${align.join('|')}|`);
  for (const c of clusterConfigs) {
    for (const [w, row] of Object.entries(clusterResults[c])) {
      const cells = [cfgTitle[c] || c, wlName[w] || w];
      for (const [metric, fmt] of [['rps', fmtRps], ['p50', fmtMs], ['p99', fmtMs]]) {
        for (const t of cols) cells.push(fmt(row[t]?.['']?.[metric]));
        if (haveBoth) cells.push(fmtRatio(row[cand]?.['']?.[metric], row[base]?.['']?.[metric]));
      }
      L.push(`| ${cells.map(esc).join(' | ')} |`);
    }
  }
  L.push('');
  // Full latency distribution, one table per configuration and workload (as in the single-member sections).
  L.push('<details><summary>Average, p90 and slowest</summary>');
  L.push('');
  L.push(`| Configuration | Workload | Metric | ${cols.join(' | ')}${haveBoth ? ' | etcd-ts / etcd' : ''} |`);
  L.push(`|---|---|---|${cols.map(() => '---:').join('|')}${haveBoth ? '|---:' : ''}|`);
  for (const c of clusterConfigs) {
    for (const [w, row] of Object.entries(clusterResults[c])) {
      for (const [label, key] of [['Average (ms)', 'avg'], ['p90 (ms)', 'p90'], ['Slowest (ms)', 'slowest']]) {
        const cells = cols.map((t) => fmtMs(row[t]?.['']?.[key]));
        const ratio = haveBoth ? ` | ${fmtRatio(row[cand]?.['']?.[key], row[base]?.['']?.[key])}` : '';
        L.push(`| ${esc(cfgTitle[c] || c)} | ${wlName[w] || w} | ${label} | ${cells.join(' | ')}${ratio} |`);
      }
    }
  }
  L.push('');
  L.push('</details>');
  L.push('');

  if (clusterMembers.length) {
    L.push('### Cluster members');
    L.push('');
    L.push('| Target | Member | Role | Start → all healthy | Peak RSS | Leader changes seen | Failed proposals | Warn/error log lines (while the workloads ran) | Shutdown |');
    L.push('|---|---|---|---:|---:|---:|---:|---:|---|');
    for (const m of clusterMembers) {
      const rss = m.rss ? `${(Number(m.rss) / 1024).toFixed(0)} MiB` : '—';
      L.push(`| ${m.target} | ${m.member} | ${m.role} | ${m.start} s | ${rss} | ${m.leaderChanges || '—'} | ${m.proposalsFailed || '—'} | ${m.warns} (${m.runWarns ?? '?'}) | ${esc(m.stop)} |`);
    }
    L.push('');
    const notes = [];
    for (const t of targets) {
      const l = clusterLeaders[t];
      if (!l) continue;
      notes.push(l.start === l.end ? `${t}: ${l.start} led throughout` : `**${t}: the leader changed during the workloads (${l.start} → ${l.end})**`);
    }
    if (notes.length) L.push(`Leader (from \`etcd_server_is_leader\` on /metrics, before the first and after the last workload): ${notes.join('; ')}.`);
    L.push('Role, peak RSS (VmHWM) and the two counters are read from the running members after the last workload;');
    L.push('"Leader changes seen" counts the initial election too, so 1 means no change. Shutdown times are measured from');
    L.push('the common SIGTERM; a leader that is stopped together with its followers first tries to hand over leadership.');
    L.push('');
  }

  const digests = targets.map((t) => [t, warningDigest(path.join(resultsDir, `cluster-warnings.${t}.log`))]).filter(([, d]) => d.length);
  if (digests.length) {
    L.push('Distinct warn/error log messages (JSON `msg`, with its `error` for connection failures; ids and addresses');
    L.push('elided), by phase: start = until all three members were healthy, run = while the workloads ran, stop = from');
    L.push('reading the metrics through shutdown.');
    L.push('');
    L.push('| Target | Phase | Message | Lines | Members |');
    L.push('|---|---|---|---:|---|');
    for (const [t, d] of digests) {
      for (const e of d.slice(0, 15)) L.push(`| ${t} | ${e.phase} | ${esc(e.msg)} | ${e.count} | ${[...e.members].sort().join(', ')} |`);
      if (d.length > 15) L.push(`| ${t} | | (${d.length - 15} more distinct messages) | ${d.slice(15).reduce((n, e) => n + e.count, 0)} | |`);
    }
    L.push('');
  }
}

function render(outFile) {
  const resultsDir = process.env.BENCH_RESULTS;
  const binDir = process.env.BENCH_BIN_DIR;
  if (!resultsDir || !binDir) throw new Error('BENCH_RESULTS and BENCH_BIN_DIR must be set (run bench/run.sh)');
  const targets = (process.env.BENCH_TARGETS || 'etcd etcd-ts').split(/\s+/).filter(Boolean);
  const m = machineInfo(binDir);

  // results[config][workload][target] = parsed; commands[config][workload] = command line
  const results = {};
  const commands = {};
  const configs = [];
  const workloads = [];
  for (const [target, config, workload, file, command] of readTsv(path.join(resultsDir, 'manifest.tsv'))) {
    if (!configs.includes(config)) configs.push(config);
    if (!workloads.includes(workload)) workloads.push(workload);
    results[config] ??= {};
    results[config][workload] ??= {};
    results[config][workload][target] = parseBenchmark(fs.readFileSync(file, 'utf8'), path.basename(file));
    commands[config] ??= {};
    commands[config][workload] = command;
  }
  const servers = Object.fromEntries(
    readTsv(path.join(resultsDir, 'servers.tsv')).map(([t, start, rss, stop, warns]) => [t, { start, rss, stop, warns }]),
  );
  // profiles[name] = { stop, bench, command, profile }, in run order
  const profiles = {};
  for (const [name, k, ...v] of readTsv(path.join(resultsDir, 'profiles.tsv'))) {
    profiles[name] ??= {};
    profiles[name][k] = v.join('\t');
  }

  // Cluster section: clusterResults[config][workload][target], clusterCommands[config][workload].
  const clusterResults = {};
  const clusterCommands = {};
  const clusterConfigs = [];
  for (const [target, config, workload, file, command] of readTsv(path.join(resultsDir, 'cluster.tsv'))) {
    if (!clusterConfigs.includes(config)) clusterConfigs.push(config);
    clusterResults[config] ??= {};
    clusterResults[config][workload] ??= {};
    clusterResults[config][workload][target] = parseBenchmark(fs.readFileSync(file, 'utf8'), path.basename(file));
    clusterCommands[config] ??= {};
    clusterCommands[config][workload] = command;
  }
  const clusterMembers = readTsv(path.join(resultsDir, 'cluster-members.tsv')).map(
    ([target, member, role, rss, leaderChanges, proposalsFailed, stop, warns, start, runWarns]) =>
      ({ target, member, role, rss, leaderChanges, proposalsFailed, stop, warns, start, runWarns }),
  );
  const clusterLeaders = Object.fromEntries(
    readTsv(path.join(resultsDir, 'cluster-info.tsv')).filter((r) => r[1] === 'leader').map(([t, , a, b]) => [t, { start: a, end: b }]),
  );

  const base = 'etcd';
  const cand = 'etcd-ts';
  const haveBoth = targets.includes(base) && targets.includes(cand);
  // Per workload: a title and the summaries its output holds. A summary: key (its heading in the
  // output without " summary:"; '' = the single unnamed summary), label, rate unit, whether its
  // latencies mean something, whether to show its Total, and whether its rate is set by a rate limit.
  const REQ = [{ key: '', label: '', unit: 'req/s', latency: true }];
  const wlSpec = {
    put: { title: 'put (8-byte sequential keys, 256-byte values)', sums: REQ },
    'range-l': { title: 'range, linearizable (`--consistency=l`), one 8-byte key with a 256-byte value', sums: REQ },
    'range-s': { title: 'range, serializable (`--consistency=s`), one 8-byte key with a 256-byte value', sums: REQ },
    'txn-put': { title: 'txn-put (one put per txn, 8-byte random keys, 256-byte values)', sums: REQ },
    'lease-keepalive': {
      title: 'lease-keepalive (each request one `KeepAliveOnce`: a new LeaseKeepAlive stream, one request, one response)',
      sums: REQ,
    },
    watch: {
      title: 'watch',
      sums: [
        { key: 'Watch creation', label: 'watch creation', unit: 'watches/s', latency: true },
        { key: 'Watch events received', label: 'events delivered', unit: 'events/s', latency: false, total: true },
      ],
    },
    'watch-latency': {
      title: 'watch-latency',
      sums: [
        { key: 'Put', label: 'puts', unit: 'puts/s', latency: true, limited: true },
        { key: 'Watch events', label: 'events', heading: 'events (put → event latency)', unit: 'events/s', latency: true, limited: true },
      ],
    },
  };
  const specOf = (w) => wlSpec[w] || { title: w, sums: REQ };
  const sumName = (w, sum) => (sum.label ? `${w}: ${sum.label}` : w);
  const cfgTitle = {
    'high-concurrency': 'High concurrency',
    'single-client': 'Single client (latency)',
    watch: 'Watch',
  };
  const clusterCfgTitle = (c) => `3-member cluster, ${(cfgTitle[c] || c).replace(/^./, (x) => x.toLowerCase())}`;
  const cfgFlags = (c) => {
    const any = Object.values(commands[c] || {})[0] || '';
    return (any.match(/--conns=\S+ --clients=\S+/) || [''])[0];
  };
  // Value of --name=value in a command line (undefined when absent; true for a bare flag).
  const flagOf = (cmd, name) => {
    const m = (cmd || '').match(new RegExp(`(?:^|\\s)--${name}(?:=(\\S+))?(?=\\s|$)`));
    if (!m) return undefined;
    return m[1] === undefined ? true : Number.isNaN(Number(m[1])) ? m[1] : Number(m[1]);
  };
  const n0 = (x) => (typeof x === 'number' ? x.toLocaleString('en-US') : '?');

  const L = [];
  L.push('# Benchmarks');
  L.push('');
  L.push('> **Generated file.** `make bench` (`bench/run.sh` + `bench/report.js`) regenerates this file on every run;');
  L.push('> edit those scripts, not this file. Numbers come from the run described below and vary between machines and runs.');
  L.push('');
  const now = new Date();
  const clusterSecs = process.env.BENCH_CLUSTER_ELAPSED;
  L.push(`Run on ${now.toISOString().replace(/\.\d+Z$/, 'Z')}; the benchmark runs took ${process.env.BENCH_ELAPSED || '?'} s` +
    `${clusterSecs ? ` (the 3-member cluster runs ${clusterSecs} s of that)` : ''}.`);
  L.push('');
  L.push('## Machine');
  L.push('');
  L.push('| | |');
  L.push('|---|---|');
  L.push(`| CPU | ${m.cpu} |`);
  L.push(`| Cores (available to this run) | ${m.cores} |`);
  L.push(`| Memory | ${m.mem} |`);
  L.push(`| OS | ${m.os} |`);
  L.push(`| Node.js | ${m.node} |`);
  L.push(`| Go (toolchain on the machine) | ${m.go} |`);
  L.push(`| Reference etcd | ${m.etcd} (built with ${m.etcdGo}) |`);
  L.push(`| etcd-ts | ${m.etcdTs} |`);
  if (process.env.BENCH_LOADAVG) L.push(`| Load average at start (1/5/15 min) | ${process.env.BENCH_LOADAVG} |`);
  if (process.env.BENCH_LOADAVG_END) L.push(`| Load average at the end (1/5/15 min) | ${process.env.BENCH_LOADAVG_END} |`);
  L.push('');
  L.push('Client (`benchmark`) and server share the same cores, so the client takes part of the CPU in every run.');
  L.push('');

  L.push('## Method');
  L.push('');
  if (!configs.length) {
    L.push(`Targets, in this order: ${targets.map((t) => `\`${t}\``).join(', ')}. The single-member section was not run`);
    L.push('(`BENCH_SINGLE=0`); see [3-member cluster](#3-member-cluster).');
    L.push('');
  } else {
    L.push(`Targets, in this order: ${targets.map((t) => `\`${t}\``).join(', ')}. For each target a fresh single member is`);
    L.push('started on free 127.0.0.1 ports with a fresh temporary data dir, `/health` is awaited, the range key is written');
    L.push('with `etcdctl put rangekey <256 bytes>`, the workloads below run in the order shown, then the member is stopped');
    L.push('(SIGTERM) and its data dir removed. Both targets get exactly the same `benchmark` commands; data from earlier');
    L.push('workloads stays in the store for later ones.');
    if (clusterConfigs.length) {
      L.push('');
      L.push('The same comparison on 3-member clusters follows in [3-member cluster](#3-member-cluster).');
    }
    L.push('');
    L.push('Members are started as:');
    L.push('');
    L.push('```sh');
    const memberFlags = '--name=bench --data-dir=<tmp> \\\n    --listen-client-urls=http://127.0.0.1:<client-port> --advertise-client-urls=http://127.0.0.1:<client-port> \\\n    --listen-peer-urls=http://127.0.0.1:<peer-port> --initial-advertise-peer-urls=http://127.0.0.1:<peer-port> \\\n    --initial-cluster=bench=http://127.0.0.1:<peer-port>';
    if (targets.includes('etcd')) L.push(`etcd ${memberFlags}`);
    if (targets.includes('etcd-ts') || Object.keys(profiles).length) L.push(`node dist/src/bin/etcd-ts.js ${memberFlags}`);
    L.push('```');
    L.push('');
    L.push('Workloads (`benchmark` is etcd\'s `tools/benchmark`, built by `test/tools/build.sh`):');
    L.push('');
    L.push('```sh');
    for (const c of configs) {
      L.push(`# ${cfgTitle[c] || c}`);
      for (const w of workloads) if (commands[c]?.[w]) L.push(commands[c][w]);
    }
    L.push('```');
    L.push('');
  }
  if (haveBoth) {
    L.push('Ratios are etcd-ts / etcd: below 1× throughput means etcd-ts is slower; above 1× latency means etcd-ts is slower.');
    L.push('Latencies are in milliseconds, as measured by the client.');
    L.push('');
  }

  // Summary
  if (haveBoth) {
    L.push('## Summary');
    L.push('');
    L.push('Rates are requests per second, except where the workload names another unit (watches created, events');
    L.push('delivered to watchers, puts). The watch-latency rates are set by its `--put-rate`, so only its latency compares.');
    L.push('');
    L.push('| Configuration | Workload | etcd rate | etcd-ts rate | Rate etcd-ts/etcd | p99 etcd-ts/etcd |');
    L.push('|---|---|---:|---:|---:|---:|');
    for (const c of configs) {
      for (const w of workloads) {
        if (!results[c]?.[w]) continue;
        for (const sum of specOf(w).sums) {
          const a = results[c][w][base]?.[sum.key];
          const b = results[c][w][cand]?.[sum.key];
          const rate = sum.limited ? 'rate-limited' : fmtRatio(b?.rps, a?.rps);
          const p99 = sum.latency ? fmtRatio(b?.p99, a?.p99) : 'n/a';
          L.push(`| ${cfgTitle[c] || c} | ${sumName(w, sum)} (${sum.unit}) | ${fmtRps(a?.rps)} | ${fmtRps(b?.rps)} | ${rate} | ${p99} |`);
        }
      }
    }
    for (const c of clusterConfigs) {
      for (const [w, row] of Object.entries(clusterResults[c])) {
        const a = row[base]?.[''];
        const b = row[cand]?.[''];
        L.push(`| ${clusterCfgTitle(c)} | ${w} (req/s) | ${fmtRps(a?.rps)} | ${fmtRps(b?.rps)} | ${fmtRatio(b?.rps, a?.rps)} | ${fmtRatio(b?.p99, a?.p99)} |`);
      }
    }
    L.push('');
  }

  // Describes the watch workloads from their actual flags.
  const describeWatch = (w, cmd) => {
    const streams = flagOf(cmd, 'streams');
    if (w === 'watch') {
      const perStream = flagOf(cmd, 'watch-per-stream');
      const keys = flagOf(cmd, 'watched-key-total');
      const space = flagOf(cmd, 'key-space-size');
      const puts = flagOf(cmd, 'put-total');
      const clients = flagOf(cmd, 'clients');
      const watchers = streams * perStream;
      // Events as `benchmark` counts them: watchers are assigned to the watched keys round-robin,
      // puts go to them round-robin; with --sequential-keys key i is i mod --key-space-size.
      let events;
      if (flagOf(cmd, 'sequential-keys') === true && [watchers, keys, space, puts].every(Number.isInteger)) {
        const per = new Map();
        for (let i = 0; i < watchers; i++) per.set((i % keys) % space, (per.get((i % keys) % space) || 0) + 1);
        events = 0;
        for (let i = 0; i < puts; i++) events += per.get((i % keys) % space) || 0;
      }
      L.push(`\`watch\` first creates ${n0(watchers)} watchers (${n0(streams)} streams × ${n0(perStream)}) on ${n0(keys)} keys; each`);
      L.push('stream creates its watchers one after another, and a creation latency is how long one `Watch` call takes to');
      L.push(`return (until the server has confirmed the watch). Then ${n0(clients)} clients put ${n0(puts)} times (value \`data\`),`);
      L.push(`round-robin over those keys and without a rate limit; every put is delivered to each watcher of its key,`);
      L.push(`${n0(events)} events in all. Events/s is that count over the time from the first put until the last event arrived`);
      L.push('(shown as Total). `benchmark` also prints a per-event "latency" for this phase, but it is the time spent');
      L.push('iterating over one received response, not a delivery latency, so it is not shown.');
    } else if (w === 'watch-latency') {
      const perStream = flagOf(cmd, 'watchers-per-stream');
      const rate = flagOf(cmd, 'put-rate');
      const puts = flagOf(cmd, 'put-total');
      L.push(`\`watch-latency\` opens ${n0(streams * perStream)} watchers (${n0(streams)} streams × ${n0(perStream)}) on one key; then a`);
      L.push(`separate client puts that key ${n0(puts)} times at ${n0(rate)} puts/s (a token bucket with a burst of ${n0(rate)}, so the first`);
      L.push('second\'s puts go out back to back) and waits until every watcher has seen every put. Put latency is the put');
      L.push('round trip while those watchers are attached; event latency is, for each watcher and put, the time from the');
      L.push('put\'s response to the event\'s arrival at the watcher (0 when the event arrives first). Both rates follow from');
      L.push('`--put-rate` and the run\'s length (all events included), so they are a check, not a throughput measure.');
    }
    L.push('');
  };

  for (const c of configs) {
    const flags = cfgFlags(c);
    L.push(c === 'watch' ? `## ${cfgTitle[c] || c}` : `## ${cfgTitle[c] || c}${flags ? ` (\`${flags}\`)` : ''}`);
    L.push('');
    for (const w of workloads) {
      const row = results[c]?.[w];
      if (!row) continue;
      const spec = specOf(w);
      if (c === 'watch') {
        L.push(`### ${spec.title}`);
        L.push('');
        L.push('```sh');
        L.push(commands[c][w]);
        L.push('```');
        L.push('');
        describeWatch(w, commands[c][w]);
      }
      for (const sum of spec.sums) {
        if (c === 'watch') L.push(`#### ${w}: ${sum.heading || sum.label}`);
        else L.push(`### ${spec.title}`);
        L.push('');
        const cols = targets.filter((t) => row[t]?.[sum.key]);
        L.push(`| | ${cols.join(' | ')}${haveBoth ? ' | etcd-ts / etcd' : ''} |`);
        L.push(`|---|${cols.map(() => '---:').join('|')}${haveBoth ? '|---:' : ''}|`);
        const metrics = [[sum.unit === 'req/s' ? 'Requests/sec' : sum.unit, 'rps', fmtRps]];
        if (sum.total) metrics.push(['Total (s)', 'totalSecs', (x) => (x === undefined ? '—' : x.toFixed(2))]);
        if (sum.latency) {
          metrics.push(
            ['Average (ms)', 'avg', fmtMs],
            ['p50 (ms)', 'p50', fmtMs],
            ['p90 (ms)', 'p90', fmtMs],
            ['p99 (ms)', 'p99', fmtMs],
            ['Slowest (ms)', 'slowest', fmtMs],
          );
        }
        for (const [label, key, fmt] of metrics) {
          const cells = cols.map((t) => fmt(row[t][sum.key][key]));
          const ratio = haveBoth ? ` | ${fmtRatio(row[cand]?.[sum.key]?.[key], row[base]?.[sum.key]?.[key])}` : '';
          L.push(`| ${label} | ${cells.join(' | ')}${ratio} |`);
        }
        L.push('');
      }
    }
  }

  L.push('## Servers');
  L.push('');
  L.push('| Target | Start → healthy | Peak RSS | Shutdown | Warn/error log lines |');
  L.push('|---|---:|---:|---|---:|');
  for (const t of targets) {
    const s = servers[t];
    if (!s) continue;
    const rss = s.rss ? `${(Number(s.rss) / 1024).toFixed(0)} MiB` : '—';
    L.push(`| ${t} | ${s.start} s | ${rss} | ${s.stop} | ${s.warns} |`);
  }
  L.push('');
  L.push('Peak RSS is the member\'s VmHWM after all its workloads. Shutdown exit status 143 means the process ended by');
  L.push('SIGTERM itself, which is how etcd exits after its orderly shutdown. Log lines are counted by level (warn and');
  L.push('above) plus non-JSON lines mentioning an error or exception; etcd logs a few warnings at startup and error-level');
  L.push('"use of closed network connection" lines on every shutdown.');
  L.push('');

  if (clusterConfigs.length) renderCluster(L, {
    targets, base, cand, haveBoth, clusterConfigs, clusterResults, clusterCommands, clusterMembers, clusterLeaders,
    resultsDir, cfgTitle,
  });

  const profNames = Object.keys(profiles);
  if (profNames.length) {
    L.push('## etcd-ts CPU profiles');
    L.push('');
    L.push('For each profiled workload a separate fresh etcd-ts member was started under');
    L.push('`node --cpu-prof --cpu-prof-dir=<tmp>`, given that workload again (same flags as above), then stopped with');
    L.push('SIGTERM; V8 writes the profile on exit. Percentages are of all samples of the main thread; locations are');
    L.push('source-mapped to the TypeScript source where possible; "(no source url)" is native code or code generated at');
    L.push('run time (e.g. protobufjs encoders/decoders). `(program)` is V8/native work not attributed to a JS function.');
    L.push('"Mostly reached from" names the nearest etcd-ts function (a source file of this repository, not a dependency');
    L.push('or Node internal) above the function on the stack, for the largest share of its self time, with that share.');
    L.push('');
  }
  for (const name of profNames) {
    const meta = profiles[name];
    const profTitle = { put: 'put (high concurrency)', 'cluster-put': 'put on a 3-member cluster (high concurrency): the leader' };
    L.push(`### ${profTitle[name] || name}`);
    L.push('');
    if (name === 'cluster-put') {
      L.push('A fresh 3-member etcd-ts cluster (started as in [3-member cluster](#3-member-cluster)) with every member');
      L.push('under `node --cpu-prof`, given the cluster put again; the leader (the member reporting');
      L.push(`\`etcd_server_is_leader 1\` on /metrics after the run${meta.member ? `: ${meta.member}` : ''}) is profiled below, the followers`);
      L.push('are summarised after it. Every request reaches the leader: puts sent to a follower are forwarded to it.');
      L.push('');
    }
    if (meta.command) {
      L.push('```sh');
      L.push(meta.command);
      L.push('```');
      L.push('');
    }
    let rates = [];
    try {
      const parsed = parseBenchmark(fs.readFileSync(meta.bench, 'utf8'));
      const sums = specOf(name).sums;
      rates = Object.entries(parsed).map(([key, r]) => {
        const sum = sums.find((x) => x.key === key);
        return `${key ? `${sum?.label || key} ` : ''}${fmtRps(r.rps)} ${sum?.unit || 'req/s'}`;
      });
    } catch { /* absent */ }
    if (rates.length) L.push(`Under the profiler: ${rates.join(', ')}. Shutdown: ${meta.stop}.`);
    else L.push(`Shutdown: ${meta.stop}.`);
    L.push('');
    if (meta.profile && fs.existsSync(meta.profile)) {
      const p = profileTop(meta.profile);
      const busy = p.total - p.special['(idle)'];
      L.push(`Profile: ${(p.durationUs / 1e6).toFixed(1)} s wall time (includes startup and shutdown), ${p.samples.toLocaleString('en-US')} samples;`);
      L.push(`idle ${fmtPct(pctOf(p.special['(idle)'], p.total))}, garbage collector ${fmtPct(pctOf(p.special['(garbage collector)'], p.total))},`);
      L.push(`\`(program)\` ${fmtPct(pctOf(p.special['(program)'], p.total))}.`);
      L.push('');
      L.push('Top functions by self time:');
      L.push('');
      L.push('| # | Function | Location | Self % | Self ms | Mostly reached from (etcd-ts code) |');
      L.push('|---:|---|---|---:|---:|---|');
      const esc = (x) => x.replace(/\|/g, '\\|');
      p.fns.slice(0, 10).forEach((e, i) => {
        const via = e.caller === '(none)' ? '—' : `\`${esc(e.caller)}\` (${Math.round(100 * e.callerShare)}%)`;
        L.push(`| ${i + 1} | \`${esc(e.fn)}\` | ${esc(e.loc)} | ${fmtPct(pctOf(e.us, p.total))} | ${(e.us / 1000).toFixed(0)} | ${via} |`);
      });
      L.push('');
      L.push('Self time by file / package:');
      L.push('');
      L.push('| File | Self % |');
      L.push('|---|---:|');
      for (const f of p.files.slice(0, 8)) L.push(`| ${f.f.replace(/\|/g, '\\|')} | ${fmtPct(pctOf(f.us, p.total))} |`);
      L.push(`| (busy total: all non-idle samples) | ${fmtPct(pctOf(busy, p.total))} |`);
      L.push('');
      const followers = Object.keys(meta).filter((k) => k.startsWith('follower-'));
      if (followers.length) {
        L.push('Followers in the same run (same profiler flags):');
        L.push('');
        L.push('| Follower | Busy | Garbage collector | Top functions by self time |');
        L.push('|---|---:|---:|---|');
        for (const k of followers) {
          const f = meta[k];
          if (!fs.existsSync(f)) {
            L.push(`| ${k.slice('follower-'.length)} | — | — | no profile: ${f} |`);
            continue;
          }
          const q = profileTop(f);
          const top = q.fns.slice(0, 3).map((e) => `\`${e.fn.replace(/\|/g, '\\|')}\` ${e.loc.replace(/\|/g, '\\|')} ${fmtPct(pctOf(e.us, q.total))}`).join('; ');
          L.push(`| ${k.slice('follower-'.length)} | ${fmtPct(pctOf(q.total - q.special['(idle)'], q.total))} | ${fmtPct(pctOf(q.special['(garbage collector)'], q.total))} | ${top} |`);
        }
        L.push('');
      }
    } else {
      L.push(`**No CPU profile was written** (${meta.stop}). Node writes \`--cpu-prof\` output only when the process`);
      L.push('exits normally (including `process.exit()` from a signal handler), not when it is killed by a signal.');
      L.push('');
    }
  }

  // Sections of their own scripts (bench/patroni.sh, bench/operator.sh): the new one if run.sh made one,
  // else the previous report's.
  const previous = fs.existsSync(outFile) ? fs.readFileSync(outFile, 'utf8') : '';
  let text = `${L.join('\n').replace(/\n+$/, '')}\n`;
  for (const name of SECTIONS) {
    const fresh = process.env[`BENCH_${name.toUpperCase()}_MD`];
    const section = fresh && fs.existsSync(fresh) ? fs.readFileSync(fresh, 'utf8') : sectionOf(previous, name);
    if (section) text = spliceSection(text, name, section);
  }
  fs.writeFileSync(outFile, text);
}

/** Report sections written by their own scripts, kept between markers. */
const SECTIONS = ['patroni', 'operator'];
const beginMarker = (name) => `<!-- ${name} section: bench/${name}.sh -->`;
const endMarker = (name) => `<!-- end of ${name} section -->`;

/** A named section of a report, without its markers ('' if there is none). */
function sectionOf(text, name) {
  const a = text.indexOf(beginMarker(name));
  const b = text.indexOf(endMarker(name));
  return a >= 0 && b > a ? text.slice(a + beginMarker(name).length, b).trim() : '';
}

/** The report with its named section replaced by (or, if it has none, ended with) `section`. */
function spliceSection(text, name, section) {
  const block = `${beginMarker(name)}\n${section.trim()}\n${endMarker(name)}`;
  const a = text.indexOf(beginMarker(name));
  const b = text.indexOf(endMarker(name));
  if (a >= 0 && b > a) return `${text.slice(0, a)}${block}${text.slice(b + endMarker(name).length)}`;
  return `${text.replace(/\n+$/, '')}\n\n${block}\n`;
}

// ------------------------------------------------------------ main

function main(argv) {
  if (argv[0] === '--profile-top') {
    const file = argv[1];
    const n = Number(argv[2] || 10);
    if (!file) throw new Error('usage: report.js --profile-top FILE.cpuprofile [N]');
    const p = profileTop(file);
    console.log(`samples ${p.samples}, idle ${fmtPct(pctOf(p.special['(idle)'], p.total))}, GC ${fmtPct(pctOf(p.special['(garbage collector)'], p.total))}, program ${fmtPct(pctOf(p.special['(program)'], p.total))}`);
    for (const e of p.fns.slice(0, n)) {
      console.log(`${fmtPct(pctOf(e.us, p.total)).padStart(6)}  ${e.fn}  ${e.loc}  <- ${e.caller} (${Math.round(100 * e.callerShare)}%)`);
    }
    return;
  }
  if (argv[0] === '--section') {
    // one script's section (bench/patroni.sh, bench/operator.sh) into an existing report, the rest untouched
    const [, name, sectionFile, outFile] = argv;
    if (!SECTIONS.includes(name) || !sectionFile || !outFile) throw new Error(`usage: report.js --section ${SECTIONS.join('|')} SECTION.md OUT.md`);
    const out = path.resolve(outFile);
    fs.writeFileSync(out, spliceSection(fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '# Benchmarks\n', name, fs.readFileSync(sectionFile, 'utf8')));
    return;
  }
  if (!argv[0]) throw new Error(`usage: report.js OUT.md | --profile-top FILE.cpuprofile [N] | --section ${SECTIONS.join('|')} SECTION.md OUT.md`);
  render(path.resolve(argv[0]));
}

try {
  main(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`bench/report.js: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
}
