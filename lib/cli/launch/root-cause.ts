/**
 * Which failed rank is the root cause of an attempt: the first failure in time that is not a
 * consequence of another failure. A rank whose failure record says it lost a peer
 * (MICS_PEER_LOST, or MICS_ABORTED naming another rank), or that the launcher stopped, is a
 * victim; a victim is the root cause only when every failure is one. Times come from the
 * ranks' own records where they wrote one (the moment the error happened), else from the
 * launcher's exit event (a rank killed by a signal cannot write anything).
 */
import { isConsequence, lostWorldRank } from '../../comm/failure-record';
import type { WorkerResult } from './supervisor';

/** When the rank failed: its record's time, else when its exit was seen. */
export function failureTime(r: WorkerResult): number {
  return r.failure?.time ?? r.endedAt ?? Number.POSITIVE_INFINITY;
}

/**
 * How much a failure says about the cause, best first: 0, it failed on its own; 1, it lost
 * another rank (its record says so); 2, the launcher stopped it (after another failure, or on
 * a signal) and it recorded nothing of its own.
 */
export function causeTier(r: WorkerResult): 0 | 1 | 2 {
  if (isConsequence(r.failure, r.rank)) return 1;
  return r.stoppedByLauncher && r.failure === undefined ? 2 : 0;
}

/** Whether the rank failed only because something else did (it lost a rank, or was stopped). */
export function isVictim(r: WorkerResult): boolean {
  return causeTier(r) > 0;
}

/** The world rank a victim says it lost, when it says which. */
export function lostRank(r: WorkerResult): number | undefined {
  return lostWorldRank(r.failure, r.rank);
}

/** The world rank a rank that timed out says it was waiting for, when its record says which. */
export function awaitedRank(r: WorkerResult): number | undefined {
  const f = r.failure;
  if (f?.code !== 'MICS_TIMEOUT') return undefined;
  const awaited = f.worldPeer ?? (f.group === 'world' ? f.peer : undefined);
  return awaited === r.rank ? undefined : awaited;
}

/**
 * The ranks among `results` that timed out waiting for world rank `rank` (in rank order).
 * When `rank` itself recorded no error, it is where the job hung: it never reached the
 * collective the others timed out in.
 */
export function ranksAwaiting(results: readonly WorkerResult[], rank: number): number[] {
  return results.filter((r) => awaitedRank(r) === rank).map((r) => r.rank).sort((a, b) => a - b);
}

/** The root cause among `failures` (undefined when there are none): the best tier, then the earliest. */
export function rootCause(failures: readonly WorkerResult[]): WorkerResult | undefined {
  return [...failures].sort((a, b) => causeTier(a) - causeTier(b) || failureTime(a) - failureTime(b) || a.rank - b.rank)[0];
}

/**
 * Whether failure `a` should replace `b` as the job's root cause (nodes publish their local
 * root causes to the store; this decides between them): a better tier wins, else the earlier
 * failure. Across machines the times are only as comparable as their clocks.
 */
export function outranks(a: WorkerResult, b: WorkerResult): boolean {
  const d = causeTier(a) - causeTier(b);
  return d !== 0 ? d < 0 : failureTime(a) < failureTime(b);
}
