/**
 * How an attempt ended, shared by all nodes through the store, and the torchrun-like summary
 * printed at the end of the job.
 */
import * as os from 'node:os';
import { causeTier, isVictim, lostRank } from './root-cause';
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
  /** A launcher was sent a signal (or lost its starter, reported as SIGHUP). */
  | { readonly kind: 'interrupted'; readonly nodeRank: number; readonly host: string; readonly signal: NodeJS.Signals; readonly time: number }
  /** An agent hit an error of its own (e.g. it lost the store). */
  | { readonly kind: 'error'; readonly nodeRank: number; readonly host: string; readonly message: string; readonly time: number };

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
  }
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
function consequenceNote(r: WorkerResult): string | undefined {
  if (causeTier(r) === 1) {
    const lost = lostRank(r);
    return `${lost === undefined ? 'lost a peer' : `lost rank ${lost}`}: a consequence of the root cause`;
  }
  return r.stoppedByLauncher ? 'stopped by the launcher after the root cause' : undefined;
}

/** What the final summary needs. */
export interface SummaryInput {
  /** Script name as the user gave it. */
  readonly script: string;
  readonly end: EndRecord;
  /** This node's ranks in the last attempt. */
  readonly local: readonly WorkerResult[];
  readonly nodeRank: number;
  readonly attempts: number;
  readonly elapsedMs: number;
  readonly worldSize: number;
  readonly nnodes: number;
}

function sameWorker(a: WorkerResult, b: WorkerResult): boolean {
  return a.rank === b.rank && a.pid === b.pid && a.host === b.host;
}

/** The end-of-job summary, torchrun style: failures of this node, then the root cause. */
export function formatSummary(s: SummaryInput): string {
  const secs = (s.elapsedMs / 1000).toFixed(2);
  if (s.end.kind === 'success') {
    return (
      `mics-launch: ${s.script} finished: ${s.local.length} rank(s) on node ${s.nodeRank}, ` +
      `${s.worldSize} in total on ${s.nnodes} node(s), exit code 0, ${secs} s, ${s.attempts} attempt(s)\n`
    );
  }
  const root = s.end.kind === 'failure' ? s.end.worker : undefined;
  const others = s.local.filter((r) => isFailure(r) && !(root && sameWorker(r, root)));
  const lines = [RULE, `${s.script} FAILED (node ${s.nodeRank}, after ${s.attempts} attempt(s), ${secs} s)`, THIN, 'Failures:'];
  if (others.length === 0) lines.push('  <NO_OTHER_FAILURES>');
  others.forEach((r, i) => lines.push(...workerBlock(i + 1, r, consequenceNote(r))));
  lines.push(THIN, 'Root Cause (first observed failure):');
  switch (s.end.kind) {
    case 'failure': {
      const where = s.end.nodeRank === s.nodeRank ? [] : [`on node ${s.end.nodeRank}`];
      // Every failure was a consequence of another (e.g. the lost rank exited with 0).
      const victim = isVictim(s.end.worker) ? ['a consequence too: no rank was seen failing on its own'] : [];
      const note = [...where, ...victim].join('; ');
      lines.push(...workerBlock(0, s.end.worker, note === '' ? undefined : note));
      break;
    }
    case 'interrupted':
      lines.push(
        '[0]:',
        `  time      : ${new Date(s.end.time).toISOString()}`,
        `  host      : ${s.end.host}`,
        `  launcher  : node ${s.end.nodeRank} received ${s.end.signal}`,
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
  }
  lines.push(RULE);
  return `${lines.join('\n')}\n`;
}
