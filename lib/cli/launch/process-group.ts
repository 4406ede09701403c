/**
 * Process-group helpers. Every rank is started as the leader of its own process group, so a
 * signal to -pgid reaches the rank and everything it started, even after the rank itself exited.
 */
import * as fs from 'node:fs';

/** Sends `signal` to every process of group `pgid`; false when the group no longer exists. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    // EPERM: a member changed credentials; the group still exists but cannot be signalled by us.
    if ((err as NodeJS.ErrnoException).code === 'EPERM') return true;
    throw err;
  }
}

/** One process as /proc shows it. */
export interface ProcInfo {
  readonly pid: number;
  readonly ppid: number;
  readonly pgid: number;
  /** Kernel state letter: R, S, D, Z (zombie), T, ... */
  readonly state: string;
}

/** Reads /proc/<pid>/stat; undefined when the process is gone or /proc does not exist. */
export function procInfo(pid: number): ProcInfo | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name is in parentheses and may itself contain spaces or ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { pid, state: rest[0], ppid: Number(rest[1]), pgid: Number(rest[2]) };
}

/** Every process on this machine (Linux /proc); empty where /proc is missing. */
export function allProcesses(): ProcInfo[] {
  let names: string[];
  try {
    names = fs.readdirSync('/proc');
  } catch {
    return [];
  }
  const out: ProcInfo[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const info = procInfo(Number(name));
    if (info) out.push(info);
  }
  return out;
}

const haveProc = fs.existsSync('/proc/self/stat');

/**
 * Whether group `pgid` still has a live (non-zombie) member. Zombies are ignored because in
 * containers whose PID 1 does not reap orphans they never go away, and they hold no resources
 * the launcher could free by waiting.
 */
export function groupAlive(pgid: number): boolean {
  if (!signalGroup(pgid, 0)) return false;
  if (!haveProc) return true;
  return allProcesses().some((p) => p.pgid === pgid && p.state !== 'Z');
}

/**
 * The groups among `pgids` that still have a live (non-zombie) member, from one scan of /proc
 * (cheaper than one scan per group when polling several ranks).
 */
export function liveGroups(pgids: readonly number[]): Set<number> {
  const candidates = pgids.filter((g) => signalGroup(g, 0));
  if (!haveProc || candidates.length === 0) return new Set(candidates);
  const wanted = new Set(candidates);
  const live = new Set<number>();
  for (const p of allProcesses()) if (wanted.has(p.pgid) && p.state !== 'Z') live.add(p.pgid);
  return live;
}
