/**
 * Multi-node start from a hostfile: one agent per host over ssh. The token travels on ssh's
 * standard input (read into the remote environment by the shell, never on a command line);
 * that input then stays open as a lifeline: when it closes, the remote agent stops its ranks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { shellQuote } from './command';
import { newToken, TOKEN_ENV } from './environment';
import type { SelectedHost } from './hostfile';
import { OPTION_ENV, type LaunchConfig } from './options';
import { LinePrefixer, type Sink } from './output';
import { signalGroup } from './process-group';
import { startWatchdog } from './watchdog';

/** What is run to start one node's agent. */
export interface NodeLaunch {
  readonly nodeRank: number;
  readonly host: string;
  readonly slots: readonly number[];
  /** The remote shell command (what ssh runs on the host). */
  readonly remote: string;
  /** The local command: ssh, its options, the host and the remote command. */
  readonly argv: readonly string[];
}

/** Variables worth carrying to remote agents: NCCL tuning and MICS settings that are not launcher options. */
function forwardedEnv(env: NodeJS.ProcessEnv): [string, string][] {
  const optionVars = new Set<string>(Object.values(OPTION_ENV));
  return Object.entries(env)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .filter(([k]) => (k.startsWith('NCCL_') || k.startsWith('MICS_')) && k !== TOKEN_ENV && !optionVars.has(k))
    .sort(([a], [b]) => a.localeCompare(b));
}

function seconds(ms: number): string {
  return String(ms / 1000);
}

/**
 * The commands that start every node. The launcher and node are assumed to live at the same
 * paths on every host (a shared file system or identical installs), and so is the working directory.
 */
export function planSshLaunch(
  config: LaunchConfig,
  hosts: readonly SelectedHost[],
  runId: string,
  env: NodeJS.ProcessEnv,
  cwd: string = process.cwd(),
  // The compiled entry point next to this module (not argv[1], which may be an npx shim or symlink).
  launcher: string = path.resolve(__dirname, '..', 'mics-launch.js'),
): NodeLaunch[] {
  const masterAddr = config.masterAddrGiven ? config.masterAddr : hosts[0].host;
  const common: string[] = [
    '--nnodes', String(hosts.length),
    '--master-addr', masterAddr,
    '--master-port', String(config.masterPort),
    '--run-id', runId,
    '--max-restarts', String(config.maxRestarts),
    '--monitor-interval', seconds(config.monitorIntervalMs),
    '--grace-period', seconds(config.gracePeriodMs),
    '--rdzv-timeout', seconds(config.rdzvTimeoutMs),
    '--emulate-nodes', String(config.emulateNodes),
  ];
  if (config.storeHostGiven) common.push('--store-host', config.storeHost);
  if (config.logDir !== undefined) common.push('--log-dir', path.resolve(cwd, config.logDir));
  if (config.redirectsText !== undefined) common.push('--redirects', config.redirectsText);
  if (config.teeText !== undefined) common.push('--tee', config.teeText);
  if (!config.runWithNode) common.push('--no-node');
  common.push('--no-slurm', '--stdin-lifeline');
  const extraEnv = forwardedEnv(env);
  return hosts.map((h, nodeRank) => {
    // A subset of a host's slots: make exactly those devices visible, so LOCAL_RANK i is slot i.
    const contiguous = h.slots.every((s, i) => s === i);
    const vars: [string, string][] = contiguous ? [...extraEnv] : [['CUDA_VISIBLE_DEVICES', h.slots.join(',')], ...extraEnv];
    const agentArgs = [
      process.execPath,
      launcher,
      '--nproc-per-node', String(h.slots.length),
      '--node-rank', String(nodeRank),
      ...common,
      '--',
      config.script,
      ...config.scriptArgs,
    ];
    const envPart = vars.length > 0 ? ['env', ...vars.map(([k, v]) => `${k}=${v}`)] : [];
    const remote =
      `cd ${shellQuote(cwd)} && IFS= read -r ${TOKEN_ENV} && export ${TOKEN_ENV} && exec ` +
      [...envPart, ...agentArgs].map(shellQuote).join(' ');
    return { nodeRank, host: h.host, slots: h.slots, remote, argv: [...config.ssh, h.host, remote] };
  });
}

/** The --dry-run text for a hostfile start: the exact command per node. */
export function formatSshDryRun(launches: readonly NodeLaunch[]): string {
  const lines = ['mics-launch dry run: nothing is started. Each node would be started with:'];
  for (const l of launches) {
    lines.push(`# node ${l.nodeRank}: ${l.host}, ${l.slots.length} rank(s) (slots ${l.slots.join(',')})`);
    lines.push(l.argv.map(shellQuote).join(' '));
  }
  lines.push(`# ${TOKEN_ENV} (<redacted>) is written to each ssh's standard input, never on a command line.`);
  return `${lines.join('\n')}\n`;
}

/** Output and signals of the starter. */
export interface SshIo {
  readonly stdout: Sink;
  readonly stderr: Sink;
}

interface Started {
  readonly launch: NodeLaunch;
  readonly child: ChildProcess;
  code: number | undefined;
  readonly exited: Promise<void>;
}

/**
 * Starts every node's agent and waits for all. The agents coordinate through the store; this
 * process only relays output and, when a node's agent ends badly or this process gets a signal,
 * closes the lifelines (the agents then stop their ranks), then SIGTERM and SIGKILL to the ssh
 * processes. Returns the first non-zero exit code of a node, or 0.
 */
export async function runSshJob(config: LaunchConfig, launches: readonly NodeLaunch[], io: SshIo): Promise<number> {
  const token = newToken();
  // If this starter is killed outright, the sidecar ends the ssh sessions, which closes the
  // remote agents' lifelines, which stop their ranks.
  const watchdog = startWatchdog(config.gracePeriodMs);
  const started: Started[] = launches.map((launch) => {
    const child = spawn(launch.argv[0], launch.argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const entry: Started = {
      launch,
      child,
      code: undefined,
      exited: new Promise<void>((resolve) => {
        child.once('exit', (code, signal) => {
          if (child.pid !== undefined) watchdog.remove([child.pid]);
          entry.code = code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0);
          resolve();
        });
        child.once('error', (err) => {
          io.stderr(`mics-launch: cannot start '${launch.argv[0]}' for node ${launch.nodeRank} (${launch.host}): ${err.message}\n`);
          entry.code = 255;
          resolve();
        });
      }),
    };
    if (child.pid !== undefined) watchdog.add([child.pid]);
    child.stdin?.on('error', () => undefined); // EPIPE when the remote side is already gone
    child.stdin?.write(`${token}\n`);
    const out = new LinePrefixer('', io.stdout);
    const err = new LinePrefixer('', io.stderr);
    child.stdout?.setEncoding('utf8').on('data', (c: string) => out.push(c)).on('close', () => out.end());
    child.stderr?.setEncoding('utf8').on('data', (c: string) => err.push(c)).on('close', () => err.end());
    return entry;
  });

  let firstFailure: number | undefined;
  let stopping: Promise<void> | undefined;
  const running = (): Started[] => started.filter((s) => s.code === undefined);
  const waitAll = (ms: number): Promise<unknown> =>
    Promise.race([Promise.all(started.map((s) => s.exited)), new Promise((r) => setTimeout(r, ms))]);
  const stopAll = (): Promise<void> => {
    stopping ??= (async () => {
      const step = config.gracePeriodMs + 5000;
      for (const s of running()) s.child.stdin?.end();
      await waitAll(step);
      for (const s of running()) if (s.child.pid) signalGroup(s.child.pid, 'SIGTERM');
      await waitAll(step);
      for (const s of running()) if (s.child.pid) signalGroup(s.child.pid, 'SIGKILL');
    })();
    return stopping;
  };

  let signalled: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (signalled) {
      for (const s of running()) if (s.child.pid) signalGroup(s.child.pid, 'SIGKILL');
      return;
    }
    signalled = sig;
    io.stderr(`mics-launch: ${sig}: stopping every node\n`);
    void stopAll();
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];
  const handlers = signals.map((s) => [s, () => onSignal(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  try {
    for (const s of started) {
      void s.exited.then(() => {
        if (s.code !== 0 && firstFailure === undefined) {
          firstFailure = s.code;
          // The other agents learn of a failed rank through the store; wait that long before
          // assuming they cannot (the node's agent itself died or ssh failed).
          setTimeout(() => void stopAll(), config.gracePeriodMs + config.monitorIntervalMs + 5000).unref();
        }
      });
    }
    await Promise.all(started.map((s) => s.exited));
  } finally {
    for (const [s, h] of handlers) process.off(s, h);
    watchdog.close();
  }
  // A signal to the starter is the root cause of everything that followed (the agents report SIGHUP).
  if (signalled) return 128 + (os.constants.signals[signalled] ?? 0);
  return firstFailure ?? 0;
}
