/**
 * The per-node agent: joins the rendezvous, starts this node's ranks, follows the job's state in
 * the store, stops and restarts the group, forwards signals, and prints the summary.
 */
import { randomBytes } from 'node:crypto';
import { MicsError } from '../../core/errors';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { workerCommand, type WorkerCommand } from './command';
import { isValidToken, newToken, TOKEN_ENV, workerEnvironment } from './environment';
import { LaunchError } from './errors';
import type { JobLayout, NodeRecord } from './layout';
import type { AgentReport, Lifeline } from './lifeline';
import { Liveness } from './liveness';
import { streamsFor, type LaunchConfig } from './options';
import type { Sink } from './output';
import {
  closeStore,
  joinedNodes,
  joinRound,
  leave,
  openStore,
  publishEnd,
  readEnd,
  reportSuccess,
  settledEnd,
  type AgentStore,
} from './rendezvous';
import { endExitCode, formatSummary, type EndRecord } from './summary';
import { WorkerGroup, type WorkerResult, type WorkerSpec } from './supervisor';
import { startWatchdog } from './watchdog';

/** Where the agent writes and what it reads. */
export interface AgentIo {
  readonly stdout: Sink;
  readonly stderr: Sink;
  readonly env: NodeJS.ProcessEnv;
  readonly hostname: string;
  /**
   * Set for an agent started by a --hostfile starter: the starter's messages (signals, lost
   * nodes) and its presence. Its loss stops the job on this node.
   */
  readonly lifeline?: Lifeline;
  /** Set with `lifeline`: the agent sends its end to the starter instead of printing a summary. */
  readonly report?: (r: AgentReport) => void;
}

/** The signals a launcher forwards to its ranks (then escalates to SIGKILL). */
export const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];

/** The run id when none was given: random on one node; on several nodes all must agree, so 'none' (torchrun's default). */
export function defaultRunId(nnodes: number): string {
  return nnodes === 1 ? `mics-${randomBytes(4).toString('hex')}` : 'none';
}

/**
 * The store token of this agent: fresh on a single node; on several nodes (or when started by
 * --hostfile) the one all agents share, from MICS_STORE_TOKEN. Never printed.
 */
export function agentToken(config: LaunchConfig, env: NodeJS.ProcessEnv): string {
  if (config.nnodes === 1 && !config.stdinLifeline) return newToken();
  const token = env[TOKEN_ENV];
  if (token === undefined || token === '') {
    throw new LaunchError(
      `a job on ${config.nnodes} nodes needs the same ${TOKEN_ENV} on every node: create one with ` +
        `\`export ${TOKEN_ENV}=$(node -e "console.log(require('crypto').randomBytes(32).toString('hex'))")\` ` +
        'where all nodes inherit it (the sbatch script, or each shell); --hostfile does this for you',
    );
  }
  if (!isValidToken(token)) {
    throw new LaunchError(`${TOKEN_ENV} must be 64 hex characters (32 random bytes); the one given has ${token.length} characters`);
  }
  return token;
}

/**
 * How long a node whose only failures lost a rank of another node waits for that node to
 * publish the real root cause (it normally does within its own settling time, well under this).
 */
const REMOTE_CAUSE_WAIT_MS = 5000;

const ERROR_DIR_PREFIX = 'mics-launch-errors-';

/** Removes error-record directories of agents that no longer run (killed before their cleanup). */
function removeOrphanedErrorDirs(): void {
  let names: string[];
  try {
    names = fs.readdirSync(os.tmpdir());
  } catch {
    return;
  }
  for (const name of names) {
    const m = new RegExp(`^${ERROR_DIR_PREFIX}(\\d+)-`).exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch (err) {
      alive = (err as NodeJS.ErrnoException).code === 'EPERM';
    }
    if (!alive) fs.rmSync(path.join(os.tmpdir(), name), { recursive: true, force: true });
  }
}

/** The directory for per-rank files, when any stream goes to a file: --log-dir, else a fresh temporary one. */
function logRoot(config: LaunchConfig, io: AgentIo): string | undefined {
  const wantsFiles = (s: LaunchConfig['redirects']): boolean => s.all !== 0 || [...s.byLocalRank.values()].some((v) => v !== 0);
  if (!wantsFiles(config.redirects) && !wantsFiles(config.tee)) return undefined;
  if (config.logDir !== undefined) return config.logDir;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mics-launch-'));
  io.stderr(`mics-launch: log directory set to ${dir}\n`);
  return dir;
}

/** Sleeps until a timeout or until {@link Wakeup.wake} is called, whichever comes first. */
class Wakeup {
  private wakeOne: (() => void) | undefined;
  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done(): void {
        clearTimeout(timer);
        self.wakeOne = undefined;
        resolve();
      }
      this.wakeOne = done;
    });
  }
  wake(): void {
    this.wakeOne?.();
  }
}

interface RoundResult {
  readonly end: EndRecord;
  readonly results: readonly WorkerResult[];
  readonly layout: JobLayout | undefined;
}

/**
 * Runs this node's part of the job to its end and returns the launcher's exit code. Usage and
 * launch errors are thrown; worker failures are not errors (they become the summary and code).
 */
export async function runAgent(config: LaunchConfig, nproc: number, io: AgentIo): Promise<number> {
  const started = Date.now();
  const runId = config.runId ?? defaultRunId(config.nnodes);
  const token = agentToken(config, io.env);
  const cmd = workerCommand(config.script, config.scriptArgs, config.runWithNode);
  const logs = logRoot(config, io);
  const record: NodeRecord = {
    nodeRank: config.nodeRank,
    host: io.hostname,
    nproc,
    emulateNodes: config.emulateNodes,
    runId,
    nnodes: config.nnodes,
    maxRestarts: config.maxRestarts,
  };
  if (nproc % config.emulateNodes !== 0) {
    throw new LaunchError(`--emulate-nodes ${config.emulateNodes} must divide the ${nproc} rank(s) of this node`);
  }

  let store: AgentStore | undefined;
  let liveness: Liveness | undefined;
  let group: WorkerGroup | undefined;
  let layoutNow: JobLayout | undefined;
  let round = 0;
  /** Why this node stops the job (a signal, a lost node, the lost store) and the signal its ranks get. */
  let stopping: { readonly end: EndRecord; readonly signal: NodeJS.Signals } | undefined;
  /** Set when the store stopped answering: no further store calls are made. */
  let storeLost: string | undefined;
  const wakeup = new Wakeup();
  // Read through functions: callbacks change these while the round loop awaits.
  const stopNow = (): typeof stopping => stopping;
  const storeLostNow = (): string | undefined => storeLost;

  let signalled = false;
  /** Leaves before anything started (still reaching the store): report (to a starter) and exit. */
  const exitEarly: (end: EndRecord) => never = (end) => {
    const code = endExitCode(end);
    io.report?.({ nodeRank: config.nodeRank, host: io.hostname, end, local: [], attempts: 1, worldSize: 0, code });
    process.exit(code);
  };
  /** Ends the job from this node: publishes `end` (the store decides whether it wins) and wakes the round loop. */
  const stopWith = (end: EndRecord, signal: NodeJS.Signals): void => {
    stopping ??= { end, signal };
    if (!store) exitEarly(end);
    if (storeLost === undefined) publishEnd(store, round, end).catch(() => undefined);
    wakeup.wake();
  };
  const onSignal = (signal: NodeJS.Signals, forwardedFrom?: string): void => {
    if (signalled) {
      // A second signal: the user wants out now, without the grace period.
      io.stderr(`mics-launch: ${signal} again: killing every rank now\n`);
      group?.killNow();
      return;
    }
    signalled = true;
    io.stderr(
      forwardedFrom === undefined
        ? `mics-launch: node ${config.nodeRank} received ${signal}: stopping the job\n`
        : `mics-launch: node ${config.nodeRank}: the starter on ${forwardedFrom} received ${signal}: stopping the job\n`,
    );
    const end: EndRecord = {
      kind: 'interrupted',
      nodeRank: config.nodeRank,
      host: forwardedFrom ?? io.hostname,
      signal,
      time: Date.now(),
      ...(forwardedFrom === undefined ? {} : { forwarded: true }),
    };
    // The round loop wakes up, forwards the signal to every rank's group and escalates.
    if (stopping !== undefined) {
      // Already stopping for another reason: the signal still reaches the ranks at once.
      group?.signalAll(signal);
      return;
    }
    stopWith(end, signal);
  };
  const onNodeLost = (nodeRank: number, host: string | undefined, message: string, time = Date.now()): void => {
    const name = host ?? layoutNow?.nodes[nodeRank]?.host ?? `node ${nodeRank}`;
    io.stderr(`mics-launch: node ${config.nodeRank}: node ${nodeRank} (${name}) lost: ${message}\n`);
    liveness?.markLost(nodeRank, message);
    stopWith({ kind: 'lost', nodeRank, host: name, message, time }, 'SIGTERM');
  };
  const onStoreLost = (message: string): void => {
    storeLost = message;
    io.stderr(`mics-launch: node ${config.nodeRank}: lost the rendezvous store: ${message}; stopping this node's ranks\n`);
    stopWith({ kind: 'error', nodeRank: config.nodeRank, host: io.hostname, message: `lost the rendezvous store (${message})`, time: Date.now() }, 'SIGTERM');
    // Whatever waits on the store fails now instead of at its own (long) timeout.
    store?.root.close();
  };
  // Cleans up the ranks should this process be killed with SIGKILL (no handler of ours runs then).
  const watchdog = startWatchdog(config.gracePeriodMs);
  const handlers = FORWARDED_SIGNALS.map((s) => [s, () => onSignal(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  // Whatever happens to this process, its ranks must not outlive it.
  const lastResort = (): void => group?.killNow();
  process.on('exit', lastResort);
  io.lifeline?.attach(
    (m) => {
      if (m.t === 'signal') onSignal(m.signal, m.host);
      else if (m.t === 'lost') onNodeLost(m.nodeRank, m.host, m.message, m.time);
    },
    (why) => {
      const message =
        why === 'closed'
          ? 'lost its connection to the mics-launch --hostfile starter (the ssh session ended)'
          : `no message from the mics-launch --hostfile starter for ${config.heartbeatTimeoutMs / 1000} s (connection lost)`;
      io.stderr(`mics-launch: node ${config.nodeRank}: ${message}; stopping this node's ranks\n`);
      stopWith({ kind: 'lost', nodeRank: config.nodeRank, host: io.hostname, message, time: Date.now() }, 'SIGTERM');
    },
  );

  let last: RoundResult | undefined;
  let finished = false;
  try {
    store = await openStore({
      nodeRank: config.nodeRank,
      nnodes: config.nnodes,
      runId,
      masterAddr: config.masterAddr,
      masterPort: config.masterPort,
      storeHost: config.storeHost,
      token,
      timeoutMs: config.rdzvTimeoutMs,
    });
    const theStore = store;
    if (config.nnodes > 1) {
      liveness = await Liveness.start({
        store,
        nodeRank: config.nodeRank,
        nnodes: config.nnodes,
        timeoutMs: config.heartbeatTimeoutMs,
        onNodeLost: (k, message) => onNodeLost(k, undefined, message),
        onStoreLost,
      });
    }
    const ompNote = (io.env.OMP_NUM_THREADS ?? '') === '' && nproc > 1;
    if (ompNote) io.stderr('mics-launch: setting OMP_NUM_THREADS=1 for every rank (it was unset); tune it for your workload\n');

    for (;;) {
      try {
        last = await runRound(round);
      } catch (err) {
        // Node 0 went away while this node was joining: say so plainly rather than with a stack.
        if (err instanceof MicsError) {
          const why = storeLost ?? err.message;
          throw new LaunchError(`node ${config.nodeRank}: lost the rendezvous store at ${theStore.address} in attempt ${round}: ${why}`);
        }
        throw err;
      }
      const end = last.end;
      const restart = end.kind === 'failure' && round < config.maxRestarts && stopping === undefined;
      if (!restart) {
        if (end.kind === 'failure' && round < config.maxRestarts && stopping !== undefined && storeLost === undefined) {
          // Other nodes would restart and wait for us: tell them the next attempt is over too.
          await publishEnd(theStore, round + 1, stopping.end).catch(() => undefined);
        }
        break;
      }
      const w = end.kind === 'failure' ? end.worker : undefined;
      io.stderr(
        `mics-launch: rank ${w?.rank} failed (exit ${w ? describeExitShort(w) : '?'}); ` +
          `restarting the group (restart ${round + 1} of ${config.maxRestarts})\n`,
      );
      round += 1;
    }
    finished = true;
  } finally {
    for (const [s, h] of handlers) process.off(s, h);
    io.lifeline?.close();
    if (group) await group.stop('SIGKILL', 0);
    watchdog.close();
    process.off('exit', lastResort);
    if (store) {
      const s = store;
      // Other nodes stop their heartbeats and unregister first: leaving is not a loss.
      if (config.nodeRank !== 0) await liveness?.stop();
      if (storeLost === undefined) {
        // After a normal end node 0 keeps the store up until every agent has read the outcome
        // (or is lost); after an error nobody may be coming, so it does not wait. Only agents
        // that joined the last attempt are waited for: one that never came will not leave either.
        const all = Array.from({ length: config.nnodes }, (_, i) => i);
        const expected = last?.layout ? all : await joinedNodes(s, round, config.nnodes).catch(() => []);
        const wait = finished ? config.gracePeriodMs + REMOTE_CAUSE_WAIT_MS + config.heartbeatTimeoutMs : 0;
        await leave(s, config.nodeRank, expected, config.nodeRank === 0 ? wait : config.heartbeatTimeoutMs, (k) => liveness?.isLost(k) ?? false).catch(
          () => undefined,
        );
      }
      await liveness?.stop();
      await closeStore(store);
    }
  }

  if (!last) throw new LaunchError('internal error: the job ended without an outcome');
  const code = endExitCode(last.end);
  if (io.report) {
    io.report({
      nodeRank: config.nodeRank,
      host: io.hostname,
      end: last.end,
      local: last.results,
      attempts: round + 1,
      worldSize: last.layout?.worldSize ?? 0,
      code,
    });
  } else {
    io.stderr(
      formatSummary({
        script: config.script,
        end: last.end,
        local: last.results,
        nodeRank: config.nodeRank,
        attempts: round + 1,
        elapsedMs: Date.now() - started,
        worldSize: last.layout?.worldSize ?? 0,
        nnodes: config.nnodes,
      }),
    );
  }
  return code;

  /** One attempt: rendezvous, start, watch until it ends, stop what is left. */
  async function runRound(n: number): Promise<RoundResult> {
    const s = store as AgentStore;
    const joined = await joinRound(s, n, record, config.rdzvTimeoutMs);
    if (!('worldSize' in joined)) return { end: joined, results: [], layout: undefined };
    const layout = joined;
    layoutNow = layout;
    // Each rank records why it failed here (MICS_ERROR_FILE); read when it exits, removed after the attempt.
    // The name carries this agent's pid, so that what a killed agent left is removed by the next one.
    removeOrphanedErrorDirs();
    const errors = fs.mkdtempSync(path.join(os.tmpdir(), `${ERROR_DIR_PREFIX}${process.pid}-`));
    try {
      return await superviseRound(n, s, layout, errors);
    } finally {
      fs.rmSync(errors, { recursive: true, force: true });
    }
  }

  async function superviseRound(n: number, s: AgentStore, layout: JobLayout, errors: string): Promise<RoundResult> {
    const specs: WorkerSpec[] = layout.ranks.map((plan) => {
      const errorFile = path.join(errors, `rank${plan.rank}.json`);
      return {
        plan,
        env: workerEnvironment(
          io.env,
          layout,
          plan,
          { masterAddr: config.masterAddr, masterPort: s.port, runId, restartCount: n, maxRestarts: config.maxRestarts, token, oneGpu: config.oneGpu },
          errorFile,
        ),
        logDir: logs === undefined ? undefined : path.join(logs, runId, `attempt_${n}`, String(plan.rank)),
        redirects: streamsFor(config.redirects, plan.agentIndex),
        tee: streamsFor(config.tee, plan.agentIndex),
        errorFile,
      };
    });
    if (n === 0 && config.nodeRank === 0) {
      io.stderr(
        `mics-launch: run '${runId}': ${layout.worldSize} rank(s) on ${config.nnodes} node(s)` +
          (layout.groupWorldSize !== config.nnodes ? ` (${layout.groupWorldSize} emulated)` : '') +
          `, store at ${config.masterAddr}:${s.port}\n`,
      );
    }
    const early = stopNow();
    if (early) return { end: early.end, results: [], layout };
    const g = startGroup(cmd, specs);
    group = g;
    watchdog.add(g.pgids());

    let localEnd: EndRecord | undefined;
    let storeError: unknown;
    g.outcome
      .then(async (o) => {
        if (o.kind === 'failed') localEnd = await publishEnd(s, n, { kind: 'failure', nodeRank: config.nodeRank, worker: o.first });
        else await reportSuccess(s, n, config.nnodes);
      })
      .catch((err: unknown) => {
        storeError = err;
      })
      .finally(() => wakeup.wake());

    let end: EndRecord | undefined;
    while (end === undefined) {
      if (storeError !== undefined) {
        end = lostStore(storeError);
        break;
      }
      if (localEnd) {
        end = localEnd;
        break;
      }
      const stop = stopNow();
      if (storeLostNow() !== undefined && stop) {
        end = stop.end;
        break;
      }
      try {
        end = await readEnd(s, n);
      } catch (err) {
        end = lostStore(err);
      }
      if (end === undefined) end = stopNow()?.end;
      if (end === undefined) await wakeup.wait(config.monitorIntervalMs);
    }
    // Stopping on a signal: the ranks get that signal, then the escalation.
    await g.stop(stopNow()?.signal ?? 'SIGTERM', config.gracePeriodMs);
    watchdog.remove(g.pgids());
    if ((end.kind === 'failure' || end.kind === 'lost') && storeError === undefined && storeLostNow() === undefined) {
      // Another node may have published an earlier root cause meanwhile: report the one that won.
      const local = new Set(layout.ranks.map((p) => p.rank));
      end = await settledEnd(s, n, end, local, config.nnodes > 1 ? REMOTE_CAUSE_WAIT_MS : 0).catch(() => end as EndRecord);
    }
    return { end, results: g.results(), layout };
  }

  function startGroup(c: WorkerCommand, specs: WorkerSpec[]): WorkerGroup {
    return WorkerGroup.start({ command: c.command, args: c.args, workers: specs, host: io.hostname, stdout: io.stdout, stderr: io.stderr });
  }

  function lostStore(err: unknown): EndRecord {
    const stop = stopNow();
    if (storeLostNow() !== undefined && stop) return stop.end;
    return {
      kind: 'error',
      nodeRank: config.nodeRank,
      host: io.hostname,
      message: `lost the rendezvous store (${err instanceof Error ? err.message : String(err)})`,
      time: Date.now(),
    };
  }
}

function describeExitShort(w: WorkerResult): string {
  return w.signal !== null ? `signal ${w.signal}` : `code ${w.exitCode}`;
}
