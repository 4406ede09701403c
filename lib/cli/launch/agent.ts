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
import { streamsFor, type LaunchConfig } from './options';
import type { Sink } from './output';
import {
  closeStore,
  joinedCount,
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
  let group: WorkerGroup | undefined;
  let round = 0;
  let interrupted: NodeJS.Signals | undefined;
  const wakeup = new Wakeup();

  const interruptRecord = (signal: NodeJS.Signals): EndRecord => ({
    kind: 'interrupted',
    nodeRank: config.nodeRank,
    host: io.hostname,
    signal,
    time: Date.now(),
  });
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted !== undefined) {
      // A second signal: the user wants out now, without the grace period.
      io.stderr(`mics-launch: ${signal} again: killing every rank now\n`);
      group?.killNow();
      return;
    }
    interrupted = signal;
    if (!store) {
      // Nothing started yet (still reaching the store): leave at once.
      process.exit(128 + (os.constants.signals[signal] ?? 0));
    }
    io.stderr(`mics-launch: node ${config.nodeRank} received ${signal}: stopping the job\n`);
    // The round loop wakes up, forwards the signal to every rank's group and escalates.
    publishEnd(store, round, interruptRecord(signal)).catch(() => undefined);
    wakeup.wake();
  };
  // Cleans up the ranks should this process be killed with SIGKILL (no handler of ours runs then).
  const watchdog = startWatchdog(config.gracePeriodMs);
  const handlers = FORWARDED_SIGNALS.map((s) => [s, () => onSignal(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  // Whatever happens to this process, its ranks must not outlive it.
  const lastResort = (): void => group?.killNow();
  process.on('exit', lastResort);
  const onLifelineEnd = (): void => onSignal('SIGHUP');
  if (config.stdinLifeline) {
    process.stdin.on('data', () => undefined);
    process.stdin.on('end', onLifelineEnd);
    process.stdin.on('error', onLifelineEnd);
  }

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
    const ompNote = (io.env.OMP_NUM_THREADS ?? '') === '' && nproc > 1;
    if (ompNote) io.stderr('mics-launch: setting OMP_NUM_THREADS=1 for every rank (it was unset); tune it for your workload\n');

    for (;;) {
      try {
        last = await runRound(round);
      } catch (err) {
        // Node 0 went away while this node was joining: say so plainly rather than with a stack.
        if (err instanceof MicsError) {
          throw new LaunchError(`node ${config.nodeRank}: lost the rendezvous store at ${theStore.address} in attempt ${round}: ${err.message}`);
        }
        throw err;
      }
      const end = last.end;
      const restart = end.kind === 'failure' && round < config.maxRestarts && interrupted === undefined;
      if (!restart) {
        if (end.kind === 'failure' && round < config.maxRestarts && interrupted !== undefined) {
          // Other nodes would restart and wait for us: tell them the next attempt is over too.
          await publishEnd(theStore, round + 1, interruptRecord(interrupted)).catch(() => undefined);
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
    if (config.stdinLifeline) {
      process.stdin.off('end', onLifelineEnd);
      process.stdin.off('error', onLifelineEnd);
      process.stdin.destroy();
    }
    if (group) await group.stop('SIGKILL', 0);
    watchdog.close();
    process.off('exit', lastResort);
    if (store) {
      // After a normal end node 0 keeps the store up until every agent has read the outcome;
      // after an error nobody may be coming, so it does not wait.
      // Only agents that joined the last attempt are waited for: one that never came will not leave either.
      const s = store;
      const expected = last?.layout ? config.nnodes : await joinedCount(s, round, config.nnodes).catch(() => 0);
      await leave(s, config.nodeRank, expected, finished ? config.gracePeriodMs + 10000 : 0).catch(() => undefined);
      await closeStore(store);
    }
  }

  if (!last) throw new LaunchError('internal error: the job ended without an outcome');
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
  return endExitCode(last.end);

  /** One attempt: rendezvous, start, watch until it ends, stop what is left. */
  async function runRound(n: number): Promise<RoundResult> {
    const s = store as AgentStore;
    const joined = await joinRound(s, n, record, config.rdzvTimeoutMs);
    if (!('worldSize' in joined)) return { end: joined, results: [], layout: undefined };
    const layout = joined;
    // Each rank records why it failed here (MICS_ERROR_FILE); read when it exits, removed after the attempt.
    const errors = fs.mkdtempSync(path.join(os.tmpdir(), 'mics-launch-errors-'));
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
    if (interrupted) return { end: interruptRecord(interrupted), results: [], layout };
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
      try {
        end = await readEnd(s, n);
      } catch (err) {
        end = lostStore(err);
      }
      if (end === undefined && interrupted) end = interruptRecord(interrupted);
      if (end === undefined) await wakeup.wait(config.monitorIntervalMs);
    }
    // Interrupted: the signal handler already sent the signal; this waits for the escalation.
    await g.stop(interrupted ?? 'SIGTERM', config.gracePeriodMs);
    watchdog.remove(g.pgids());
    if (end.kind === 'failure' && storeError === undefined) {
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
