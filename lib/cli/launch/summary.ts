/**
 * How an attempt ended, shared by all nodes through the store, and the torchrun-like summary
 * printed at the end of the job.
 */
import * as os from 'node:os';
import { awaitedRank, causeTier, failureTime, isVictim, lostRank, outranks, ranksAwaiting } from './root-cause';
import { exitCodeOf, isFailure, type WorkerResult } from './supervisor';

/**
 * Why an attempt ended, the same on every node. The first record written to the store wins,
 * except that a failure is replaced by one that outranks it (a cause over a victim, an earlier
 * cause over a later one): see {@link publishEnd}.
 */
export type EndRecord =
  | { readonly kind: 'success' }
  /** A rank failed: the root cause. */
  | { readonly kind: 'failure'; readonly nodeRank: number; readonly worker: WorkerResult }
  /**
   * A launcher was sent a signal. `forwarded`: the hostfile starter on `host` received it and
   * forwarded it to every node's agent.
   */
  | {
      readonly kind: 'interrupted';
      readonly nodeRank: number;
      readonly host: string;
      readonly signal: NodeJS.Signals;
      readonly time: number;
      readonly forwarded?: boolean;
    }
  /** An agent hit an error of its own (e.g. it lost the store). */
  | { readonly kind: 'error'; readonly nodeRank: number; readonly host: string; readonly message: string; readonly time: number }
  /**
   * A node was lost: its agent died or its connection to the store closed without leaving, its
   * heartbeats stopped (partition, hung host), or its ssh session ended without the agent's report.
   */
  | { readonly kind: 'lost'; readonly nodeRank: number; readonly host: string; readonly message: string; readonly time: number };

/** The exit code of a job whose root cause is a lost node (as for other launch-level failures). */
export const LOST_NODE_EXIT_CODE = 1;

/** The launcher's exit code for an ended job: the root cause's code (128 + signal for signals). */
export function endExitCode(end: EndRecord): number {
  switch (end.kind) {
    case 'success':
      return 0;
    case 'failure':
      return exitCodeOf(end.worker);
    case 'interrupted':
      return 128 + (os.constants.signals[end.signal] ?? 0);
    case 'error':
      return 1;
    case 'lost':
      return LOST_NODE_EXIT_CODE;
  }
}

/**
 * Whether end record `a` should replace `b` as the job's root cause, for the records that
 * compete (rank failures and lost nodes): a failing rank that is not a consequence, or a lost
 * node, outranks the victims (ranks that only lost a peer, or were stopped); among equals the
 * earlier wins. Other records (success, a signal, an agent's error) never replace or get replaced:
 * the first one written stands.
 */
export function endOutranks(a: EndRecord, b: EndRecord): boolean {
  const rankOf = (e: EndRecord): { tier: number; time: number } | undefined =>
    e.kind === 'failure' ? { tier: causeTier(e.worker), time: failureTime(e.worker) } : e.kind === 'lost' ? { tier: 0, time: e.time } : undefined;
  const ra = rankOf(a);
  const rb = rankOf(b);
  if (ra === undefined || rb === undefined) return false;
  if (a.kind === 'failure' && b.kind === 'failure') return outranks(a.worker, b.worker);
  return ra.tier !== rb.tier ? ra.tier < rb.tier : ra.time < rb.time;
}

/** `3`, or `Signal 9 (SIGKILL)`, as torchrun words it. */
export function describeExit(r: Pick<WorkerResult, 'exitCode' | 'signal' | 'error'>): string {
  if (r.error !== undefined) return `${r.exitCode ?? 127} (could not start: ${r.error})`;
  if (r.signal !== null) return `Signal ${os.constants.signals[r.signal] ?? '?'} (${r.signal})`;
  return String(r.exitCode);
}

const RULE = '='.repeat(60);
const THIN = '-'.repeat(60);

const MAX_ERROR_CHARS = 300;

function workerBlock(index: number, r: WorkerResult, note?: string): string[] {
  const error = r.failure ? `${r.failure.code ? `${r.failure.code}: ` : ''}${r.failure.message}` : undefined;
  return [
    `[${index}]:`,
    // The time of the failure: when the rank recorded its error, else when its exit was seen.
    `  time      : ${new Date(r.failure?.time ?? r.endedAt ?? Date.now()).toISOString()}`,
    `  host      : ${r.host}`,
    `  rank      : ${r.rank} (local_rank: ${r.localRank}, node: ${r.groupRank})`,
    `  exitcode  : ${describeExit(r)} (pid: ${r.pid ?? 'none'})`,
    ...(error ? [`  error     : ${error.length > MAX_ERROR_CHARS ? `${error.slice(0, MAX_ERROR_CHARS - 3)}...` : error}`] : []),
    ...(note ? [`  note      : ${note}`] : []),
  ];
}

/** Why a failure that is not the root cause happened, as far as the launcher knows. */
function consequenceNote(r: WorkerResult, results: readonly WorkerResult[]): string | undefined {
  if (causeTier(r) === 1) {
    const lost = lostRank(r);
    return `${lost === undefined ? 'lost a peer' : `lost rank ${lost}`}: a consequence of the root cause`;
  }
  if (!r.stoppedByLauncher) return undefined;
  const waiting = r.failure === undefined ? ranksAwaiting(results, r.rank) : [];
  return waiting.length === 0
    ? 'stopped by the launcher after the root cause'
    : `stopped by the launcher after the root cause; ${rankList(waiting)} timed out waiting for it`;
}

/**
 * A timed-out root cause names the rank it waited for. When that rank is among `results` and
 * recorded no error of its own, it never reached the collective: the job hung there, not in
 * the rank that happened to time out first.
 */
function hungRankNote(root: WorkerResult, results: readonly WorkerResult[]): string | undefined {
  const awaited = awaitedRank(root);
  const hung = results.find((r) => r.rank === awaited);
  if (awaited === undefined || hung === undefined || hung.failure !== undefined) return undefined;
  const waiting = ranksAwaiting([root, ...results.filter((r) => r.rank !== root.rank)], awaited);
  const state = hung.stoppedByLauncher ? 'was stopped by the launcher' : hung.endedAt === undefined ? 'was still running' : `exited with ${describeExit(hung)}`;
  return `rank ${awaited} recorded no error and ${state}: it never reached this collective (${rankList(waiting)} timed out waiting for it); look at what rank ${awaited} was doing`;
}

function rankList(ranks: readonly number[]): string {
  return ranks.length === 1 ? `rank ${ranks[0]}` : `ranks ${ranks.join(', ')}`;
}

/** A node of a hostfile start whose agent sent no report (its ssh session ended without one). */
export interface MissingNode {
  readonly nodeRank: number;
  readonly host: string;
  readonly message: string;
}

/** What the final summary needs. */
export interface SummaryInput {
  /** Script name as the user gave it. */
  readonly script: string;
  readonly end: EndRecord;
  /** The ranks this summary covers in the last attempt: this node's, or every node's for a hostfile start. */
  readonly local: readonly WorkerResult[];
  /** This node's rank; undefined for the combined summary of a hostfile start (all nodes). */
  readonly nodeRank: number | undefined;
  readonly attempts: number;
  readonly elapsedMs: number;
  readonly worldSize: number;
  readonly nnodes: number;
  /** Combined summary: nodes that sent no report (their ranks are unknown). */
  readonly missing?: readonly MissingNode[];
}

function sameWorker(a: WorkerResult, b: WorkerResult): boolean {
  return a.rank === b.rank && a.pid === b.pid && a.host === b.host;
}

/** The end-of-job summary, torchrun style: failures of this node (or of every node), then the root cause. */
export function formatSummary(s: SummaryInput): string {
  const secs = (s.elapsedMs / 1000).toFixed(2);
  const combined = s.nodeRank === undefined;
  if (s.end.kind === 'success') {
    const where = combined ? `${s.worldSize} rank(s) on ${s.nnodes} node(s)` : `${s.local.length} rank(s) on node ${s.nodeRank}, ${s.worldSize} in total on ${s.nnodes} node(s)`;
    return `mics-launch: ${s.script} finished: ${where}, exit code 0, ${secs} s, ${s.attempts} attempt(s)\n`;
  }
  const root = s.end.kind === 'failure' ? s.end.worker : undefined;
  const others = s.local.filter((r) => isFailure(r) && !(root && sameWorker(r, root)));
  const rootNode = s.end.kind === 'lost' ? s.end.nodeRank : undefined;
  const missing = (s.missing ?? []).filter((m) => m.nodeRank !== rootNode);
  const who = combined ? `${s.nnodes} node(s)` : `node ${s.nodeRank}`;
  const lines = [RULE, `${s.script} FAILED (${who}, after ${s.attempts} attempt(s), ${secs} s)`, THIN, 'Failures:'];
  if (others.length === 0 && missing.length === 0) lines.push('  <NO_OTHER_FAILURES>');
  others.forEach((r, i) => lines.push(...workerBlock(i + 1, r, consequenceNote(r, s.local))));
  missing.forEach((m, i) =>
    lines.push(`[${others.length + i + 1}]:`, `  host      : ${m.host}`, `  node      : ${m.nodeRank}: no report (${m.message})`),
  );
  lines.push(THIN, 'Root Cause (first observed failure):');
  switch (s.end.kind) {
    case 'failure': {
      const where = !combined && s.end.nodeRank !== s.nodeRank ? [`on node ${s.end.nodeRank}`] : [];
      // Every failure was a consequence of another (e.g. the lost rank exited with 0).
      const victim = isVictim(s.end.worker) ? ['a consequence too: no rank was seen failing on its own'] : [];
      const hung = hungRankNote(s.end.worker, s.local);
      const note = [...where, ...victim, ...(hung === undefined ? [] : [hung])].join('; ');
      lines.push(...workerBlock(0, s.end.worker, note === '' ? undefined : note));
      break;
    }
    case 'interrupted':
      lines.push(
        '[0]:',
        `  time      : ${new Date(s.end.time).toISOString()}`,
        `  host      : ${s.end.host}`,
        s.end.forwarded
          ? `  launcher  : mics-launch --hostfile received ${s.end.signal} and forwarded it to every node`
          : `  launcher  : node ${s.end.nodeRank} received ${s.end.signal}`,
        `  exitcode  : ${endExitCode(s.end)}`,
      );
      break;
    case 'error':
      lines.push(
        '[0]:',
        `  time      : ${new Date(s.end.time).toISOString()}`,
        `  host      : ${s.end.host}`,
        `  launcher  : node ${s.end.nodeRank}: ${s.end.message}`,
        `  exitcode  : 1`,
      );
      break;
    case 'lost':
      lines.push(
        '[0]:',
        `  time      : ${new Date(s.end.time).toISOString()}`,
        `  host      : ${s.end.host}`,
        `  node      : ${s.end.nodeRank} lost: ${s.end.message}`,
        `  exitcode  : ${LOST_NODE_EXIT_CODE}`,
      );
      break;
  }
  lines.push(RULE);
  return `${lines.join('\n')}\n`;
}
