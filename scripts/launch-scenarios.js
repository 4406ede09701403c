#!/usr/bin/env node
/**
 * Failure scenarios of `mics-launch --hostfile` over real ssh: emulated nodes (network
 * namespaces) with an sshd in each (scripts/ssh-cluster.sh), the launcher started in node 0 as
 * an operator would, 2 ranks per node all-reducing over the CPU backend
 * (test/fixtures/launch/collectives.js), and one failure injected per scenario. Prints a
 * table: outcome against the expectation, exit code, root cause, seconds from the failure to the
 * launcher's exit and to the last process of the job (agents, ranks, their children) gone on
 * every node, the job's processes left per node a second after the launcher exited, and when
 * sshd's own session processes were gone.
 *
 *   sudo node scripts/launch-scenarios.js [--only a,b] [--grace S] [--heartbeat S] [--json FILE] [--keep] [--install]
 *
 * Brings up its own cluster (prefix mics-scn-<pid>, so it never touches another one) and takes
 * it down at the end. Needs root, openssh-server (--install installs it with apt-get, starting
 * no service), and the built package (npm run build:ts). --keep prints the launcher's output of
 * a scenario that went wrong. Also used by test/cli/launch/ssh-cluster.test.ts.
 */
'use strict';
const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const LAUNCHER = path.join(ROOT, 'dist', 'cli', 'mics-launch.js');
const COLLECTIVES = path.join(ROOT, 'test', 'fixtures', 'launch', 'collectives.js');
const WORKER = path.join(ROOT, 'test', 'fixtures', 'launch', 'worker.js');
const SSH_CLUSTER = path.join(ROOT, 'scripts', 'ssh-cluster.sh');
const SSHD = '/usr/sbin/sshd';

/** Why the scenarios cannot run here, or undefined when they can. */
function unavailable(install = false) {
  if (process.platform !== 'linux') return 'not Linux';
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'not root (network namespaces and sshd need root)';
  if (!install && !fs.existsSync(SSHD)) return `${SSHD} not found (openssh-server is not installed; scripts/ssh-cluster.sh up 2 --install installs it)`;
  for (const tool of ['ip', 'ssh', 'unshare']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `'${tool}' not found`;
    }
  }
  if (!fs.existsSync(LAUNCHER)) return `${LAUNCHER} is missing (npm run build:ts)`;
  return undefined;
}

/** An ssh cluster of `n` nodes under `prefix`: brought up by {@link Cluster.up}. */
class Cluster {
  constructor(prefix, n) {
    this.prefix = prefix;
    this.n = n;
  }

  static up(prefix, n, install = false) {
    execFileSync(SSH_CLUSTER, ['--prefix', prefix, 'up', String(n), ...(install ? ['--install'] : [])], { stdio: ['ignore', 'ignore', 'pipe'] });
    const c = new Cluster(prefix, n);
    const env = Object.fromEntries(
      execFileSync(SSH_CLUSTER, ['--prefix', prefix, 'env'], { encoding: 'utf8' })
        .trim()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    c.sshConfig = env.SSH_CONFIG;
    c.hostfile = env.HOSTFILE;
    c.stateDir = path.dirname(env.HOSTFILE);
    c.listeners = new Set(
      Array.from({ length: n }, (_, k) => Number(fs.readFileSync(path.join(c.stateDir, `sshd.${k}.pid`), 'utf8').trim())),
    );
    return c;
  }

  down() {
    execFileSync(SSH_CLUSTER, ['--prefix', this.prefix, 'down'], { stdio: 'ignore' });
  }

  ns(k) {
    return `${this.prefix}-node${k}`;
  }

  addr(k) {
    return `10.77.0.${k + 1}`;
  }

  /** The job's processes on node k: everything in its namespace but sshd (the listener and its sessions). */
  processes(k) {
    return this.all(k).filter((p) => !(cmdline(p)[0] ?? '').startsWith('sshd'));
  }

  /** sshd's session processes on node k (not the listener). */
  sessions(k) {
    return this.all(k).filter((p) => (cmdline(p)[0] ?? '').startsWith('sshd'));
  }

  all(k) {
    let out = '';
    try {
      out = execFileSync('ip', ['netns', 'pids', this.ns(k)], { encoding: 'utf8' });
    } catch {
      return [];
    }
    return out
      .split('\n')
      .map(Number)
      .filter((p) => p > 0 && !this.listeners.has(p) && alive(p));
  }

  leftPerNode() {
    return Array.from({ length: this.n }, (_, k) => this.processes(k).length);
  }

  sessionsLeft() {
    return Array.from({ length: this.n }, (_, k) => this.sessions(k).length).reduce((a, b) => a + b, 0);
  }
}

/** A live (non-zombie) process. */
function alive(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function cmdline(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

function ppid(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

/** The agent of node `k` of the job on `port`. */
function agentPid(port, k) {
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cmd = cmdline(Number(name));
    const at = (flag) => cmd[cmd.indexOf(flag) + 1];
    if (cmd.includes('--stdin-lifeline') && at('--master-port') === String(port) && at('--node-rank') === String(k)) return Number(name);
  }
  return undefined;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(predicate, ms, what) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** The root cause of a summary, on one line. */
function rootCauseOf(stderr) {
  const i = stderr.lastIndexOf('Root Cause (first observed failure):');
  if (i < 0) return /finished: /.test(stderr) ? '(none: finished)' : '(no summary)';
  const block = stderr.slice(i).split('\n');
  const field = (name) => block.find((l) => l.startsWith(`  ${name}`))?.split(': ').slice(1).join(': ');
  const rank = field('rank      ');
  if (rank) return `rank ${rank.split(' ')[0]}, exit ${field('exitcode  ')?.replace(/ \(pid.*$/, '')}`;
  const node = field('node      ');
  if (node) return `node ${node.split(' ')[0]} (${field('host      ')}) lost: ${node.split(' lost: ')[1]}`;
  return field('launcher  ') ?? '(unreadable)';
}

/** When the processes left on the nodes are counted, after the launcher's exit. */
const LEFT_AFTER_MS = 1000;

let portBase = 29600 + (process.pid % 200) * 10;

/**
 * Runs one scenario. `inject(ctx)` causes the failure once every rank is up (and returns when
 * it did); `expect` is the exit code and a pattern the root cause must match.
 */
async function run(cluster, opts, s) {
  const port = portBase++;
  const pidDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mics-scn-'));
  const hostfile = s.hostfile ? s.hostfile(cluster) : cluster.hostfile;
  const args = [
    LAUNCHER,
    '--hostfile', hostfile,
    '--ssh', `ssh -F ${cluster.sshConfig}`,
    '--master-port', String(port),
    '--grace-period', String(opts.grace),
    '--heartbeat-timeout', String(opts.heartbeat),
    ...(s.args ?? []),
    s.script ?? COLLECTIVES,
  ];
  const child = spawn('ip', ['netns', 'exec', cluster.ns(0), process.execPath, ...args], {
    cwd: ROOT,
    env: { ...process.env, FIX_PID_DIR: pidDir, ...(s.env ?? {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c) => (stderr += c));
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, at: Date.now() })));
  const ranks = () => fs.readdirSync(pidDir).filter((f) => /^rank\d+\.json$/.test(f)).length;
  const world = s.world ?? 2 * cluster.n;
  const ctx = { cluster, port, child, pidDir, stderr: () => stderr };
  let injectedAt;
  let error;
  try {
    if (s.inject) {
      if (s.waitForRanks !== false) await until(() => ranks() >= world, 30000, 'every rank to start');
      await s.inject(ctx);
    }
    injectedAt = Date.now();
  } catch (err) {
    error = err;
    injectedAt = Date.now();
  }
  const timeout = setTimeout(() => child.kill('SIGKILL'), opts.limitMs);
  const end = await exited;
  clearTimeout(timeout);
  let cleanAt = Date.now();
  let left;
  let leftCommands = [];
  const countLeft = (now = false) => {
    // What an operator relaunching right away would find: the processes a second after the exit.
    if (left !== undefined || (!now && Date.now() < end.at + LEFT_AFTER_MS)) return;
    left = cluster.leftPerNode();
    leftCommands = Array.from({ length: cluster.n }, (_, k) => cluster.processes(k).map((p) => `node ${k}: ${cmdline(p).join(' ').slice(0, 100)}`)).flat();
  };
  try {
    await until(() => (countLeft(), cluster.leftPerNode().every((c) => c === 0)), opts.cleanLimitMs, 'every node to be clean');
    cleanAt = Date.now();
  } catch {
    cleanAt = undefined;
  }
  if (left === undefined) {
    await sleep(Math.max(0, end.at + LEFT_AFTER_MS - Date.now()));
    countLeft(true);
  }
  // sshd's own session processes end on sshd's terms (ClientAlive, or the connection's end).
  let sessionsAt = Date.now();
  try {
    await until(() => cluster.sessionsLeft() === 0, opts.cleanLimitMs, 'the sshd sessions to end');
    sessionsAt = Date.now();
  } catch {
    sessionsAt = undefined;
  }
  if (s.after) await s.after(ctx);
  const code = end.code ?? 128 + (os.constants.signals[end.signal] ?? 0);
  const root = rootCauseOf(stderr);
  const checks = [];
  if (error) checks.push(`injection failed: ${error.message}`);
  if (code !== s.expect.code) checks.push(`exit code ${code}, expected ${s.expect.code}`);
  if (!s.expect.root.test(root)) checks.push(`root cause '${root}' does not match ${s.expect.root}`);
  const cleanWithin = s.cleanWithinMs?.(opts);
  if (cleanWithin !== undefined) {
    // The isolated node cannot be told anything: it must stop on its own, within the window.
    if (cleanAt === undefined || cleanAt - injectedAt > cleanWithin) checks.push(`the job was not gone everywhere within ${cleanWithin / 1000} s`);
  } else if (left.some((c) => c > 0)) checks.push(`processes left ${LEFT_AFTER_MS / 1000} s after the launcher exited: ${leftCommands.join(', ')}`);
  if (cleanAt === undefined) checks.push(`nodes not clean within ${opts.cleanLimitMs / 1000} s`);
  const within = s.withinMs?.(opts);
  const stopMs = end.at - injectedAt;
  if (within !== undefined && stopMs > within) checks.push(`stopped after ${(stopMs / 1000).toFixed(2)} s, target ${within / 1000} s`);
  if (s.check) checks.push(...s.check({ stdout, stderr, code }));
  fs.rmSync(pidDir, { recursive: true, force: true });
  return {
    name: s.name,
    outcome: checks.length === 0 ? 'as expected' : 'NOT as expected',
    problems: checks,
    code,
    rootCause: root,
    stopSeconds: Number((stopMs / 1000).toFixed(2)),
    cleanSeconds: cleanAt === undefined ? undefined : Number(((cleanAt - injectedAt) / 1000).toFixed(2)),
    sessionsSeconds: sessionsAt === undefined ? undefined : Number(((sessionsAt - injectedAt) / 1000).toFixed(2)),
    leftPerNode: left,
    stdout,
    stderr,
  };
}

/** The scenarios, in table order. `fast` ones run in the jest suite. */
const SCENARIOS = [
  {
    name: 'happy path',
    fast: true,
    env: { FIX_OPS: '200' },
    expect: { code: 0, root: /^\(none: finished\)$/ },
  },
  {
    name: 'a rank fails (uncaught error, rank 3 on node 1)',
    fast: true,
    env: { FIX_THROW_RANK: '3', FIX_THROW_AFTER_MS: '200' },
    inject: async () => undefined,
    expect: { code: 1, root: /^rank 3, exit 1$/ },
    withinMs: (o) => o.grace * 1000 + 5000,
  },
  {
    name: "node 1's agent killed (kill -9)",
    fast: true,
    inject: async ({ port }) => process.kill(agentPid(port, 1), 'SIGKILL'),
    expect: { code: 1, root: /^node 1 \(10\.77\.0\.2.*\) lost: / },
    withinMs: (o) => o.grace * 1000 + 5000,
  },
  {
    name: "node 1's sshd session killed (kill -9)",
    inject: async ({ port }) => process.kill(ppid(agentPid(port, 1)), 'SIGKILL'),
    expect: { code: 1, root: /^node 1 \(10\.77\.0\.2.*\) lost: / },
    withinMs: (o) => o.grace * 1000 + 5000,
  },
  {
    name: 'a host unreachable (10.77.0.99 in the hostfile)',
    hostfile: (c) => {
      const f = path.join(c.stateDir, 'hostfile-unreachable');
      fs.writeFileSync(f, `${c.addr(0)} slots=2\n10.77.0.99 slots=2\n`);
      return f;
    },
    world: 2,
    waitForRanks: false,
    inject: async () => undefined,
    expect: { code: 1, root: /^node 1 \(10\.77\.0\.99\) lost: its ssh session ended \(exit code 255\) without the agent's report: ssh: connect to host 10\.77\.0\.99/ },
    withinMs: (o) => Math.max(5, Math.ceil(o.heartbeat)) * 1000 + 5000,
  },
  {
    name: 'a partition (node 1: ip link set eth0 down)',
    inject: async ({ cluster }) => execFileSync('ip', ['-n', cluster.ns(1), 'link', 'set', 'eth0', 'down']),
    after: async ({ cluster }) => execFileSync('ip', ['-n', cluster.ns(1), 'link', 'set', 'eth0', 'up']),
    // Whichever notices first: ssh's keepalives (the starter) or the heartbeats (node 0).
    expect: { code: 1, root: /^node 1 \(10\.77\.0\.2.*\) lost: (no heartbeat|its ssh session ended .*not responding)/ },
    // Detection within the heartbeat timeout plus one interval, then the stop; node 1 stops its
    // own ranks when the store falls silent, within the same window.
    withinMs: (o) => o.heartbeat * 1200 + o.grace * 1000 + 5000,
    cleanWithinMs: (o) => o.heartbeat * 1200 + o.grace * 1000 + 5000,
  },
  {
    name: 'Ctrl-C (SIGINT to the launcher)',
    fast: true,
    inject: async ({ child }) => child.kill('SIGINT'),
    expect: { code: 130, root: /^mics-launch --hostfile received SIGINT/ },
    withinMs: (o) => o.grace * 1000 + 5000,
    // Every rank gets SIGINT; one whose peer died of it first may fail of the loss just before.
    check: ({ stderr }) => {
      const blocks = stderr.split(/^\[\d+\]:$/m).filter((b) => /^ {2}rank {6}: /m.test(b));
      const killed = blocks.filter((b) => /exitcode {2}: Signal 2 \(SIGINT\)/.test(b)).length;
      const fine = blocks.filter((b) => /exitcode {2}: Signal 2 \(SIGINT\)|note {6}: lost rank \d+/.test(b)).length;
      return blocks.length === 4 && fine === 4 && killed >= 1 ? [] : [`of ${blocks.length} ranks, ${killed} ended by SIGINT and ${fine - killed} other(s) by losing a peer`];
    },
  },
  {
    name: 'the environment (FOO=1 OMP_NUM_THREADS=4 CUDA_VISIBLE_DEVICES=0,1)',
    fast: true,
    script: WORKER,
    env: { FOO: '1', OMP_NUM_THREADS: '4', CUDA_VISIBLE_DEVICES: '0,1', FIX_PRINT_ENV: 'FOO' },
    expect: { code: 0, root: /^\(none: finished\)$/ },
    check: ({ stdout }) => {
      const envs = stdout
        .split('\n')
        .map((l) => /^\[node \d+\] \[rank \d+\] ENV (.*)$/.exec(l))
        .filter(Boolean)
        .map((m) => JSON.parse(m[1]));
      const good = envs.filter((e) => e.FOO === '1' && e.OMP_NUM_THREADS === '4' && e.CUDA_VISIBLE_DEVICES === '0,1');
      return envs.length === 4 && good.length === 4 ? [] : [`${good.length} of ${envs.length} ranks got FOO, OMP_NUM_THREADS and CUDA_VISIBLE_DEVICES`];
    },
  },
];

function table(results, opts) {
  const lines = [
    `grace period ${opts.grace} s, heartbeat timeout ${opts.heartbeat} s; 2 nodes x 2 ranks (CPU backend, all-reduce loop); ` +
      `seconds from the failure; processes left per node ${LEFT_AFTER_MS / 1000} s after the launcher exited`,
    '',
    '| scenario | outcome | exit code | root cause (summary) | launcher exit (s) | job gone everywhere (s) | left per node | sshd sessions gone (s) |',
    '|---|---|---:|---|---:|---:|---|---:|',
  ];
  for (const r of results) {
    lines.push(
      `| ${r.name} | ${r.outcome} | ${r.code} | ${r.rootCause.replace(/\|/g, '\\|')} | ${r.stopSeconds} | ${r.cleanSeconds ?? 'no'} | ${r.leftPerNode.join(' / ')} | ${r.sessionsSeconds ?? 'no'} |`,
    );
  }
  const bad = results.filter((r) => r.problems.length > 0);
  for (const r of bad) lines.push('', `${r.name}: ${r.problems.join('; ')}`);
  return `${lines.join('\n')}\n`;
}

async function main(argv) {
  const opts = { grace: 2, heartbeat: 5, limitMs: 120000, cleanLimitMs: 30000, only: undefined, json: undefined, keep: false, install: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--only') opts.only = argv[++i].split(',');
    else if (a === '--grace') opts.grace = Number(argv[++i]);
    else if (a === '--heartbeat') opts.heartbeat = Number(argv[++i]);
    else if (a === '--json') opts.json = argv[++i];
    else if (a === '--keep') opts.keep = true;
    else if (a === '--install') opts.install = true;
    else throw new Error(`unknown option '${a}': expected --only a,b, --grace S, --heartbeat S, --json FILE, --keep, --install`);
  }
  const why = unavailable(opts.install);
  if (why) {
    process.stderr.write(`launch-scenarios: cannot run: ${why}\n`);
    return 2;
  }
  const chosen = SCENARIOS.filter((s) => !opts.only || opts.only.some((o) => s.name.toLowerCase().includes(o.toLowerCase())));
  const cluster = Cluster.up(`mics-scn-${process.pid % 100000}`, 2, opts.install);
  const results = [];
  try {
    for (const s of chosen) {
      process.stderr.write(`launch-scenarios: ${s.name} ...\n`);
      const r = await run(cluster, opts, s);
      results.push(r);
      process.stderr.write(`launch-scenarios: ${s.name}: ${r.outcome}, exit ${r.code}, ${r.stopSeconds} s\n`);
      if (r.problems.length > 0 && opts.keep) process.stderr.write(r.stderr);
    }
  } finally {
    cluster.down();
  }
  process.stdout.write(table(results, opts));
  if (opts.json) fs.writeFileSync(opts.json, JSON.stringify({ options: opts, results }, null, 2));
  return results.every((r) => r.problems.length === 0) ? 0 : 1;
}

module.exports = { unavailable, Cluster, SCENARIOS, run, rootCauseOf, table };

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`launch-scenarios: ${err.stack ?? err}\n`);
      process.exit(1);
    },
  );
}
