/**
 * Supervision of one attempt's local ranks: start each in its own process group, watch for the
 * first failure, and stop whole process trees with escalation (signal, grace period, SIGKILL).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as os from 'node:os';
import { preciseNow, readFailureRecord, type FailureRecord } from '../../comm/failure-record';
import type { RankPlan } from './layout';
import { RankOutput, type Sink } from './output';
import { liveGroups, signalGroup } from './process-group';
import type { StdStreams } from './options';
import { isVictim, lostRank, rootCause } from './root-cause';

/** One rank to start. */
export interface WorkerSpec {
  readonly plan: RankPlan;
  readonly env: NodeJS.ProcessEnv;
  /** Directory for this rank's log files, when any stream goes to a file. */
  readonly logDir: string | undefined;
  readonly redirects: StdStreams;
  readonly tee: StdStreams;
  /** Where the rank records why it failed (MICS_ERROR_FILE in `env`), read when it exits. */
  readonly errorFile?: string;
}

/** How a rank ended (or that it has not yet). */
export interface WorkerResult {
  readonly rank: number;
  readonly localRank: number;
  readonly groupRank: number;
  readonly host: string;
  /** Process id (= process group id); undefined when it could not be started. */
  readonly pid: number | undefined;
  /** Exit code, or null when it was killed by a signal or is still running. */
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Why it could not be started, if so. */
  readonly error: string | undefined;
  readonly startedAt: number;
  /** When its exit was seen (ms since the epoch, sub-millisecond precision). */
  readonly endedAt: number | undefined;
  /** What the rank recorded about its failure (its error, code, the peer it lost), if anything. */
  readonly failure?: FailureRecord;
  /** The launcher stopped it (after another rank failed, or on a signal to the launcher). */
  readonly stoppedByLauncher: boolean;
}

/** True when a finished rank counts as a failure. */
export function isFailure(r: WorkerResult): boolean {
  return r.endedAt !== undefined && (r.exitCode !== 0 || r.signal !== null);
}

/** The launcher's exit code for a failed rank: its exit code, or 128 + signal number. */
export function exitCodeOf(r: Pick<WorkerResult, 'exitCode' | 'signal'>): number {
  if (r.signal !== null) return 128 + (os.constants.signals[r.signal] ?? 0);
  return r.exitCode ?? 1;
}

/** The outcome of an attempt as seen locally: every rank succeeded, or some failed and `first` is the root cause. */
export type GroupOutcome = { readonly kind: 'succeeded' } | { readonly kind: 'failed'; readonly first: WorkerResult };

/** What to run and how. */
export interface WorkerGroupOptions {
  readonly command: string;
  readonly args: readonly string[];
  readonly workers: readonly WorkerSpec[];
  readonly host: string;
  readonly stdout: Sink;
  readonly stderr: Sink;
}

interface Slot {
  result: WorkerResult;
  child: ChildProcess | undefined;
  output: RankOutput | undefined;
  /** Resolves when the rank's process has exited (or never started). */
  exited: Promise<void>;
}

const POLL_MS = 20;
/** After SIGKILL a process normally dies at once; give up waiting after this (D state, EPERM). */
const KILL_WAIT_MS = 5000;
/** Exits reaped in one pass of the event loop arrive in no particular order: judge them together. */
const SETTLE_MS = 50;
/**
 * A victim names a rank of this node that has not been reaped yet: it is dying (its peers saw
 * its sockets close), so wait this long at most for its exit before settling on the victim.
 */
const VICTIM_WAIT_MS = 3000;

/** The local ranks of one attempt. Create with {@link WorkerGroup.start}. */
export class WorkerGroup {
  private readonly slots: Slot[] = [];
  private settled = false;
  private firstFailureAt: number | undefined;
  private recheck: NodeJS.Timeout | undefined;
  private resolveOutcome!: (o: GroupOutcome) => void;
  /** Resolves at the first failure, or when all ranks exited with 0. */
  readonly outcome: Promise<GroupOutcome>;

  private constructor(private readonly opts: WorkerGroupOptions) {
    this.outcome = new Promise((resolve) => {
      this.resolveOutcome = resolve;
    });
  }

  /** Starts every rank, each as leader of a new process group (detached). */
  static start(opts: WorkerGroupOptions): WorkerGroup {
    const group = new WorkerGroup(opts);
    for (const spec of opts.workers) group.startOne(spec);
    group.check();
    return group;
  }

  private startOne(spec: WorkerSpec): void {
    const base: WorkerResult = {
      rank: spec.plan.rank,
      localRank: spec.plan.localRank,
      groupRank: spec.plan.groupRank,
      host: this.opts.host,
      pid: undefined,
      exitCode: null,
      signal: null,
      error: undefined,
      startedAt: Date.now(),
      endedAt: undefined,
      stoppedByLauncher: false,
    };
    const slot: Slot = { result: base, child: undefined, output: undefined, exited: Promise.resolve() };
    this.slots.push(slot);
    let child: ChildProcess;
    try {
      child = spawn(this.opts.command, [...this.opts.args], {
        env: spec.env,
        // detached = setsid(): the rank leads its own process group, so one signal to -pid reaches
        // everything it starts, and a Ctrl-C on the terminal reaches the launcher only (which forwards it).
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (err) {
      slot.result = { ...base, exitCode: 127, error: String(err), endedAt: Date.now() };
      return;
    }
    slot.child = child;
    slot.result = { ...base, pid: child.pid };
    slot.output = new RankOutput(
      {
        rank: spec.plan.rank,
        redirects: spec.redirects,
        tee: spec.tee,
        dir: spec.logDir,
        stdout: this.opts.stdout,
        stderr: this.opts.stderr,
      },
      child.stdout,
      child.stderr,
    );
    slot.exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        const endedAt = preciseNow();
        const failure = spec.errorFile === undefined ? undefined : readFailureRecord(spec.errorFile);
        slot.result = { ...slot.result, exitCode: code, signal, endedAt, ...(failure ? { failure } : {}) };
        resolve();
        this.check();
      });
      child.once('error', (err) => {
        // Only a failed start lands here without an 'exit' (e.g. ENOENT for --no-node).
        if (slot.result.endedAt !== undefined || child.pid !== undefined) return;
        slot.result = { ...slot.result, exitCode: 127, error: err.message, endedAt: Date.now() };
        resolve();
        this.check();
      });
    });
  }

  /**
   * Settles {@link outcome} once every rank succeeded, or shortly after the first failure with
   * its root cause ({@link rootCause}): after {@link SETTLE_MS}, and while every failure so far
   * is a victim and one of them names a rank of this node that is still running, up to
   * {@link VICTIM_WAIT_MS}.
   */
  private check(): void {
    if (this.settled) return;
    const results = this.slots.map((s) => s.result);
    const allEnded = this.slots.length === this.opts.workers.length && results.every((r) => r.endedAt !== undefined);
    const failures = results.filter(isFailure);
    const root = rootCause(failures);
    if (root === undefined) {
      if (allEnded) this.settle({ kind: 'succeeded' });
      return;
    }
    const now = Date.now();
    this.firstFailureAt ??= now;
    const waited = now - this.firstFailureAt;
    // Ranks that victims name and that still run here are dying (a chain of victims may name
    // each other before one names the rank that really died): wait for them while no cause is seen.
    const running = new Set(results.filter((r) => r.pid !== undefined && r.endedAt === undefined).map((r) => r.rank));
    const dying = isVictim(root) && failures.some((f) => running.has(lostRank(f) ?? -1));
    if (allEnded || (waited >= SETTLE_MS && (!dying || waited >= VICTIM_WAIT_MS))) {
      this.settle({ kind: 'failed', first: root });
      return;
    }
    clearTimeout(this.recheck);
    const next = waited < SETTLE_MS ? SETTLE_MS - waited : VICTIM_WAIT_MS - waited;
    this.recheck = setTimeout(() => this.check(), next);
  }

  private settle(outcome: GroupOutcome): void {
    this.settled = true;
    clearTimeout(this.recheck);
    this.resolveOutcome(outcome);
  }

  /** Results of all ranks so far, by local index. */
  results(): WorkerResult[] {
    return this.slots.map((s) => s.result);
  }

  /** Process group ids of the ranks that were started (a rank's pid is its group id). */
  pgids(): number[] {
    return this.slots.map((s) => s.result.pid).filter((p): p is number => p !== undefined);
  }

  /**
   * Stops every rank and everything it started: `signal` to each process group that still has a
   * live process, up to `graceMs` for them to end, then SIGKILL. Ranks still running when this is
   * called are marked as stopped by the launcher. Resolves when every rank's process has exited
   * and its group is empty (or SIGKILL could not end it within a few seconds).
   */
  async stop(signal: NodeJS.Signals, graceMs: number): Promise<void> {
    for (const s of this.slots) {
      if (s.result.pid !== undefined && s.result.endedAt === undefined) s.result = { ...s.result, stoppedByLauncher: true };
    }
    let live = liveGroups(this.pgids());
    for (const g of live) signalGroup(g, signal);
    const deadline = Date.now() + graceMs;
    while (this.anyRunning(live) && Date.now() < deadline) {
      await sleep(POLL_MS);
      live = liveGroups([...live]);
    }
    if (live.size > 0) {
      for (const g of live) signalGroup(g, 'SIGKILL');
      const killDeadline = Date.now() + KILL_WAIT_MS;
      while (this.anyRunning(live) && Date.now() < killDeadline) {
        await sleep(POLL_MS);
        live = liveGroups([...live]);
      }
    }
    // The exit events of the leaders follow their death promptly; wait for them so results are complete.
    await Promise.race([Promise.all(this.slots.map((s) => s.exited)), sleep(KILL_WAIT_MS)]);
    await Promise.all(this.slots.map((s) => s.output?.close(1000)));
  }

  private anyRunning(live: Set<number>): boolean {
    return live.size > 0 || this.slots.some((s) => s.child !== undefined && s.result.endedAt === undefined);
  }

  /** Sends `signal` to every rank's process group that still has a live process (no escalation). */
  signalAll(signal: NodeJS.Signals): void {
    for (const g of liveGroups(this.pgids())) signalGroup(g, signal);
  }

  /**
   * Last resort when the launcher itself is exiting (synchronous, for process 'exit'): SIGKILL
   * every group that may still have a process.
   */
  killNow(): void {
    for (const g of liveGroups(this.pgids())) signalGroup(g, 'SIGKILL');
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
