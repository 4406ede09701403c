/**
 * Multi-node start from a hostfile: one agent per host over ssh. The token travels on ssh's
 * standard input (read into the remote environment by the shell, never on a command line),
 * then the carried environment and the starter's messages (lifeline.ts); that input stays open
 * as a lifeline: when it closes or falls silent, the remote agent stops its ranks. Each agent
 * ends with a report on its standard output; the starter prints one summary for the job and
 * exits with the root cause's code.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { shellQuote } from './command';
import { newToken, TOKEN_ENV } from './environment';
import type { SelectedHost } from './hostfile';
import { decodeReport, encodeMessage, type AgentReport, type StarterMessage } from './lifeline';
import { heartbeatIntervalMs } from './liveness';
import type { LaunchConfig } from './options';
import { LinePrefixer, type Sink } from './output';
import { signalGroup } from './process-group';
import { carriedEnvironment, envFilePaths, readEnvFiles } from './remote-env';
import { endExitCode, endOutranks, formatSummary, type EndRecord, type MissingNode } from './summary';
import type { WorkerResult } from './supervisor';
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
  /** The environment the node's agent gets on its standard input (carried variables, CUDA_VISIBLE_DEVICES for a slot subset). */
  readonly env: Readonly<Record<string, string>>;
}

/**
 * Options added to a plain `ssh` command (after the user's own, so that theirs win: ssh keeps
 * the first value it sees): no prompts (several ssh processes share one terminal), a connect
 * timeout, and keepalives that give up on a silent server within the heartbeat timeout.
 */
export function defaultSshOptions(heartbeatTimeoutMs: number): string[] {
  const seconds = heartbeatTimeoutMs / 1000;
  return [
    '-o', 'BatchMode=yes',
    '-o', `ConnectTimeout=${Math.max(5, Math.ceil(seconds))}`,
    '-o', `ServerAliveInterval=${Math.max(1, Math.floor(seconds / 4))}`,
    '-o', 'ServerAliveCountMax=3',
  ];
}

/** The ssh command line up to the host: the user's command, plus {@link defaultSshOptions} when it is ssh itself. */
export function sshCommand(config: Pick<LaunchConfig, 'ssh' | 'heartbeatTimeoutMs'>): string[] {
  const isSsh = path.basename(config.ssh[0]) === 'ssh';
  return isSsh ? [...config.ssh, ...defaultSshOptions(config.heartbeatTimeoutMs)] : [...config.ssh];
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
    '--heartbeat-timeout', seconds(config.heartbeatTimeoutMs),
    '--emulate-nodes', String(config.emulateNodes),
  ];
  if (config.storeHostGiven) common.push('--store-host', config.storeHost);
  if (config.logDir !== undefined) common.push('--log-dir', path.resolve(cwd, config.logDir));
  if (config.redirectsText !== undefined) common.push('--redirects', config.redirectsText);
  if (config.teeText !== undefined) common.push('--tee', config.teeText);
  if (!config.runWithNode) common.push('--no-node');
  common.push('--no-slurm', '--stdin-lifeline');
  const carried = carriedEnvironment(env, {
    allow: config.envAllow,
    deny: config.envDeny,
    fileEntries: readEnvFiles(envFilePaths(config.envFile, cwd)),
  });
  const ssh = sshCommand(config);
  return hosts.map((h, nodeRank) => {
    // A subset of a host's slots: make exactly those devices visible, so LOCAL_RANK i is slot i.
    const contiguous = h.slots.every((s, i) => s === i);
    const nodeEnv = contiguous ? carried : { ...carried, CUDA_VISIBLE_DEVICES: h.slots.join(',') };
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
    const remote = `cd ${shellQuote(cwd)} && IFS= read -r ${TOKEN_ENV} && export ${TOKEN_ENV} && exec ${agentArgs.map(shellQuote).join(' ')}`;
    return { nodeRank, host: h.host, slots: h.slots, remote, argv: [...ssh, h.host, remote], env: nodeEnv };
  });
}

/** The --dry-run text for a hostfile start: the exact command per node. */
export function formatSshDryRun(launches: readonly NodeLaunch[]): string {
  const lines = ['mics-launch dry run: nothing is started. Each node would be started with:'];
  for (const l of launches) {
    lines.push(`# node ${l.nodeRank}: ${l.host}, ${l.slots.length} rank(s) (slots ${l.slots.join(',')})`);
    lines.push(l.argv.map(shellQuote).join(' '));
    const names = Object.keys(l.env);
    const cvd = l.env.CUDA_VISIBLE_DEVICES;
    lines.push(
      `# environment on standard input: ${names.length} variable(s)` +
        (cvd !== undefined ? `, CUDA_VISIBLE_DEVICES=${cvd}` : '') +
        (names.length > 0 ? `: ${names.join(' ')}` : ''),
    );
  }
  lines.push(`# ${TOKEN_ENV} (<redacted>) and the environment are written to each ssh's standard input, never on a command line.`);
  return `${lines.join('\n')}\n`;
}


/** Output of the starter, and what it needs to know about itself. */
export interface SshIo {
  readonly stdout: Sink;
  readonly stderr: Sink;
  /** This machine's name: where the starter runs (named when it forwards a signal). */
  readonly hostname: string;
}

/** One node's ssh session as the starter follows it. */
interface NodeSession {
  readonly launch: NodeLaunch;
  readonly child: ChildProcess;
  report: AgentReport | undefined;
  /** Set once the session ended (exit and both pipes closed): its exit code, or 128 + signal. */
  code: number | undefined;
  /** The last line on ssh's stderr that was not a rank's or the agent's: ssh's own word on why it ended. */
  lastSshLine: string | undefined;
  /** Set when the session ended without the agent's report. */
  lost: EndRecord | undefined;
  readonly closed: Promise<void>;
}

/** How long the starter waits for the agents after the job began to end, beyond the grace period and heartbeat timeout. */
const STOP_SLACK_MS = 10000;
/** After closing the lifelines, time for the agents to go before ssh itself is signalled; then before SIGKILL. */
const LIFELINE_CLOSE_WAIT_MS = 5000;
const SSH_TERM_WAIT_MS = 2000;
const SSH_KILL_WAIT_MS = 1000;

function describeCode(code: number): string {
  if (code > 128 && code < 160) {
    const name = Object.entries(os.constants.signals).find(([, n]) => n === code - 128)?.[0];
    if (name) return `killed by ${name}`;
  }
  return `exit code ${code}`;
}

/**
 * Starts every node's agent over ssh, relays their output tagged by node, and waits for the
 * end of the job. The agents coordinate through the store; this process forwards signals it
 * receives to every agent, names a node whose ssh session ends without a report (and tells
 * the others), and, when the agents do not finish in time, closes the lifelines and ends the
 * ssh sessions. Prints one summary and returns the root cause's exit code.
 */
export async function runSshJob(config: LaunchConfig, launches: readonly NodeLaunch[], io: SshIo): Promise<number> {
  const started = Date.now();
  const token = newToken();
  // If this starter is killed outright, the sidecar ends the ssh sessions, which closes the
  // remote agents' lifelines, which stop their ranks.
  const watchdog = startWatchdog(config.gracePeriodMs);
  let stopTimer: NodeJS.Timeout | undefined;
  let finishing = false;

  const sessions: NodeSession[] = launches.map((launch) => startSession(launch));
  const running = (): NodeSession[] => sessions.filter((s) => s.code === undefined);
  const send = (s: NodeSession, m: StarterMessage): void => {
    if (s.code === undefined && s.child.stdin?.writable) s.child.stdin.write(encodeMessage(m));
  };
  const broadcast = (m: StarterMessage, except?: NodeSession): void => {
    for (const s of running()) if (s !== except) send(s, m);
  };
  const pinger = setInterval(() => broadcast({ t: 'ping' }), heartbeatIntervalMs(config.heartbeatTimeoutMs));

  /** The end of the line for agents that do not finish: lifelines closed, then ssh signalled. */
  const endSessions = async (): Promise<void> => {
    for (const s of running()) s.child.stdin?.end();
    await waitClosed(LIFELINE_CLOSE_WAIT_MS);
    for (const s of running()) if (s.child.pid) signalGroup(s.child.pid, 'SIGTERM');
    await waitClosed(SSH_TERM_WAIT_MS);
    for (const s of running()) if (s.child.pid) signalGroup(s.child.pid, 'SIGKILL');
  };
  /** The job began to end: give the agents the grace period and the heartbeat timeout to finish. */
  const beginStop = (): void => {
    if (stopTimer !== undefined) return;
    stopTimer = setTimeout(() => void endSessions(), config.gracePeriodMs + config.heartbeatTimeoutMs + STOP_SLACK_MS);
    stopTimer.unref();
  };
  /** Every node reported or is known lost: sessions still open belong to lost nodes and are ended now. */
  const settleIfDone = (): void => {
    if (finishing) return;
    const lostNodes = new Set<number>();
    for (const s of sessions) {
      if (s.lost) lostNodes.add(s.launch.nodeRank);
      if (s.report?.end.kind === 'lost') lostNodes.add(s.report.end.nodeRank);
    }
    const pending = sessions.filter((s) => s.report === undefined && s.lost === undefined && !lostNodes.has(s.launch.nodeRank));
    if (pending.length > 0) return;
    finishing = true;
    void finishSessions();
  };
  /**
   * Ends what is left once the outcome is known: a session whose agent reported is closing on its
   * own (its lifeline is closed to be sure); one of a lost node cannot be reached: ssh is ended.
   */
  const finishSessions = async (): Promise<void> => {
    const unreachable = running().filter((s) => !s.report);
    for (const s of running()) s.child.stdin?.end();
    for (const s of unreachable) if (s.child.pid) signalGroup(s.child.pid, 'SIGTERM');
    await waitClosed(SSH_KILL_WAIT_MS);
    for (const s of unreachable) if (s.child.pid && s.code === undefined) signalGroup(s.child.pid, 'SIGKILL');
    await waitClosed(SSH_TERM_WAIT_MS);
    for (const s of running()) if (s.child.pid) signalGroup(s.child.pid, 'SIGTERM');
    await waitClosed(SSH_KILL_WAIT_MS);
    for (const s of running()) if (s.child.pid) signalGroup(s.child.pid, 'SIGKILL');
  };

  let signalled: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (signalled) {
      // A second signal: the agents kill their ranks at once; the sessions follow shortly.
      io.stderr(`mics-launch: ${sig} again: killing every rank now\n`);
      broadcast({ t: 'signal', signal: sig, host: io.hostname });
      setTimeout(() => void endSessions(), SSH_TERM_WAIT_MS).unref();
      return;
    }
    signalled = sig;
    io.stderr(`mics-launch: ${sig}: forwarding it to every node\n`);
    broadcast({ t: 'signal', signal: sig, host: io.hostname });
    beginStop();
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];
  const handlers = signals.map((s) => [s, () => onSignal(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  try {
    await Promise.all(sessions.map((s) => s.closed));
  } finally {
    for (const [s, h] of handlers) process.off(s, h);
    clearInterval(pinger);
    clearTimeout(stopTimer);
    watchdog.close();
  }

  const end = finalEnd();
  const reports = sessions.map((s) => s.report).filter((r): r is AgentReport => r !== undefined);
  const missing: MissingNode[] = sessions
    .filter((s) => s.report === undefined)
    .map((s) => ({ nodeRank: s.launch.nodeRank, host: s.launch.host, message: lostMessage(s) }));
  io.stderr(
    formatSummary({
      script: config.script,
      end,
      local: reports.flatMap((r) => r.local as WorkerResult[]),
      nodeRank: undefined,
      attempts: Math.max(1, ...reports.map((r) => r.attempts)),
      elapsedMs: Date.now() - started,
      worldSize: Math.max(0, ...reports.map((r) => r.worldSize)),
      nnodes: launches.length,
      missing,
    }),
  );
  return endExitCode(end);

  function waitClosed(ms: number): Promise<unknown> {
    return Promise.race([Promise.all(sessions.map((s) => s.closed)), new Promise((r) => setTimeout(r, ms))]);
  }

  function lostMessage(s: NodeSession): string {
    const how = s.code === undefined ? 'still open' : describeCode(s.code);
    return `its ssh session ended (${how}) without the agent's report` + (s.lastSshLine ? `: ${s.lastSshLine}` : '');
  }

  /**
   * The job's root cause: the agents' reports (what each last read in the store) and the nodes
   * lost without one, ranked as the store ranks them; else node 0's word, else the first.
   */
  function finalEnd(): EndRecord {
    const candidates: EndRecord[] = [];
    const byNode = [...sessions].sort((a, b) => a.launch.nodeRank - b.launch.nodeRank);
    for (const s of byNode) if (s.report) candidates.push(s.report.end);
    for (const s of byNode) if (s.lost) candidates.push(s.lost);
    let best: EndRecord | undefined;
    for (const c of candidates) {
      if (best === undefined || endOutranks(c, best) || (best.kind === 'success' && c.kind !== 'success')) best = c;
    }
    if (best === undefined) {
      return signalled
        ? { kind: 'interrupted', nodeRank: 0, host: io.hostname, signal: signalled, time: Date.now(), forwarded: true }
        : { kind: 'error', nodeRank: 0, host: io.hostname, message: 'no node reported how the job ended', time: Date.now() };
    }
    // A lost node is named as the hostfile names it (agents only know host names).
    if (best.kind === 'lost') {
      const named = launches[best.nodeRank]?.host;
      if (named !== undefined && named !== best.host) best = { ...best, host: `${named} (${best.host})` };
    }
    return best;
  }

  function startSession(launch: NodeLaunch): NodeSession {
    const child = spawn(launch.argv[0], launch.argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const tag = `[node ${launch.nodeRank}] `;
    let resolveClosed!: () => void;
    const session: NodeSession = {
      launch,
      child,
      report: undefined,
      code: undefined,
      lastSshLine: undefined,
      lost: undefined,
      closed: new Promise<void>((resolve) => {
        resolveClosed = resolve;
      }),
    };
    if (child.pid !== undefined) watchdog.add([child.pid]);
    child.stdin?.on('error', () => undefined); // EPIPE when the remote side is already gone
    child.stdin?.write(`${token}\n`);
    child.stdin?.write(encodeMessage({ t: 'env', env: { ...launch.env } }));
    const out = new LinePrefixer('', (text) => {
      for (const line of text.split('\n')) {
        if (line === '') continue;
        const report = decodeReport(line);
        if (report) onReport(session, report);
        else io.stdout(`${tag}${line}\n`);
      }
    });
    const err = new LinePrefixer('', (text) => {
      for (const line of text.split('\n')) {
        if (line === '') continue;
        if (!line.startsWith('[rank ') && !line.startsWith('mics-launch')) session.lastSshLine = line.trim();
        io.stderr(`${tag}${line}\n`);
      }
    });
    child.stdout?.setEncoding('utf8').on('data', (c: string) => out.push(c)).on('close', () => out.end());
    child.stderr?.setEncoding('utf8').on('data', (c: string) => err.push(c)).on('close', () => err.end());
    child.once('error', (e) => {
      session.lastSshLine = `cannot start '${launch.argv[0]}': ${e.message}`;
    });
    // 'close' comes after the exit and after both pipes closed: a report sent before the exit has been read.
    child.once('close', (code, signal) => {
      if (child.pid !== undefined) watchdog.remove([child.pid]);
      // A negative code is a failed start (-errno): ssh's own 255 says "could not connect" best.
      session.code = code !== null && code >= 0 ? code : signal ? 128 + (os.constants.signals[signal] ?? 0) : 255;
      if (!session.report) onLost(session);
      resolveClosed();
      settleIfDone();
    });
    return session;
  }

  function onReport(session: NodeSession, report: AgentReport): void {
    session.report = report;
    if (report.end.kind === 'error' && report.end.nodeRank === session.launch.nodeRank && !finishing) {
      // The agent itself failed (e.g. node 0 could not start the store): the others may be
      // waiting for it in the rendezvous, which nothing else would end before its timeout.
      const { nodeRank, host } = session.launch;
      const message = `its launcher failed: ${report.end.message}`;
      broadcast({ t: 'lost', nodeRank, host, message, time: report.end.time }, session);
    }
    beginStop();
    settleIfDone();
  }

  function onLost(session: NodeSession): void {
    const { nodeRank, host } = session.launch;
    const message = lostMessage(session);
    session.lost = { kind: 'lost', nodeRank, host, message, time: Date.now() };
    if (finishing) return;
    io.stderr(`mics-launch: node ${nodeRank} (${host}) lost: ${message}\n`);
    broadcast({ t: 'lost', nodeRank, host, message, time: session.lost.time }, session);
    beginStop();
  }
}
