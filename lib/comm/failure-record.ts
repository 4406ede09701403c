/**
 * A rank's record of why it failed, for its launcher. mics-launch gives every rank a file
 * (MICS_ERROR_FILE); the first failure the rank sees (an error of a collective or of init(),
 * or an exception nobody caught) is written there with its time, code and the peer it names.
 * The launcher reads it when the rank exits, to tell the rank that failed first (the root
 * cause) from the ranks that only lost it: exit times alone cannot, since a rank that dies can
 * take longer to be reaped than the peers that noticed its death.
 */
import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';

/** What a rank writes about its first failure (JSON). */
export interface FailureRecord {
  /** When it was seen: ms since the epoch, sub-millisecond precision ({@link preciseNow}). */
  time: number;
  /** The MicsError code, when the error was one. */
  code?: string;
  /** The error's first line, shortened. */
  message: string;
  /** The rank (in `group`) that raised it. */
  rank?: number;
  group?: string;
  op?: string;
  /** The rank of `group` the failure concerns (the one that was lost). */
  peer?: number;
  /** `peer` as a world rank, when `group` is a sub-group. */
  worldPeer?: number;
}

/** The wall clock with sub-millisecond precision, comparable across processes of one machine. */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}

const MAX_MESSAGE = 500;
let target: string | undefined;
let recorded = false;
let monitoring = false;

/**
 * Records failures of this process in `file` from now on (init() calls this with
 * MICS_ERROR_FILE). Without a file nothing is recorded. Watches for uncaught exceptions and
 * unhandled rejections without changing what Node does with them.
 */
export function installFailureRecord(file: string | undefined): void {
  target = file;
  if (file === undefined || monitoring) return;
  monitoring = true;
  process.on('uncaughtExceptionMonitor', (err) => noteFailure(err));
}

/** Writes `err` as this rank's failure record, unless one was written already (the first one counts). */
export function noteFailure(err: unknown): void {
  if (target === undefined || recorded) return;
  recorded = true;
  const e = (typeof err === 'object' && err !== null ? err : {}) as Record<string, unknown>;
  const text = err instanceof Error ? err.message : String(err);
  const record: FailureRecord = {
    time: preciseNow(),
    message: text.split('\n')[0].slice(0, MAX_MESSAGE),
    ...(typeof e.code === 'string' ? { code: e.code } : {}),
    ...(typeof e.rank === 'number' ? { rank: e.rank } : {}),
    ...(typeof e.group === 'string' ? { group: e.group } : {}),
    ...(typeof e.op === 'string' ? { op: e.op } : {}),
    ...(typeof e.peer === 'number' ? { peer: e.peer } : {}),
    ...(typeof e.worldPeer === 'number' ? { worldPeer: e.worldPeer } : {}),
  };
  try {
    // Written whole, then renamed: the launcher never reads half a record.
    const tmp = `${target}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(record));
    fs.renameSync(tmp, target);
  } catch {
    // Best effort: a record that cannot be written must not replace the real error.
  }
}

/** The record in `file`, or undefined when there is none (or it is not one). */
export function readFailureRecord(file: string): FailureRecord | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
  const r = parsed as Partial<FailureRecord> | null;
  if (typeof r !== 'object' || r === null || typeof r.time !== 'number' || typeof r.message !== 'string') return undefined;
  return r as FailureRecord;
}

/** Codes that say a rank failed because another one did. */
const CONSEQUENCES: readonly string[] = ['MICS_PEER_LOST', 'MICS_ABORTED'];

/**
 * Whether the record says its rank failed because another rank did: it lost a peer
 * (MICS_PEER_LOST), or its communicator was aborted over one (MICS_ABORTED naming a rank
 * other than itself). `worldRank` is the rank that wrote the record.
 */
export function isConsequence(record: FailureRecord | undefined, worldRank: number): boolean {
  if (record === undefined || record.code === undefined || !CONSEQUENCES.includes(record.code)) return false;
  if (record.worldPeer !== undefined) return record.worldPeer !== worldRank;
  return record.peer !== undefined && record.rank !== undefined && record.peer !== record.rank;
}

/** The world rank a consequence names as lost, when the record says which (undefined otherwise). */
export function lostWorldRank(record: FailureRecord | undefined, worldRank: number): number | undefined {
  if (!isConsequence(record, worldRank)) return undefined;
  const r = record as FailureRecord;
  return r.worldPeer ?? (r.group === 'world' ? r.peer : undefined);
}
