/**
 * Where a step's time goes and what it moved: per optimizer step, the bytes each
 * group moved and the time the caller spent waiting on each kind of collective,
 * in kernels, and computing; optionally a timeline of every op as Chrome
 * trace-event JSON (opens in Perfetto and chrome://tracing).
 */
import { performance } from 'node:perf_hooks';

/** Bytes moved by this rank in one group, per kind of collective (algorithm bytes, as nccl-tests counts them). */
export interface GroupBytes {
  allGather: number;
  reduceScatter: number;
  allReduce: number;
}

/** The statistics of one optimizer step (or of the micro-steps so far, for the current one). */
export interface StepStats {
  /** The optimizer step these figures belong to (1-based). */
  step: number;
  microSteps: number;
  /** Whether the update was skipped (fp16 overflow). */
  skipped: boolean;
  /** Wall time from the end of the previous step() (or the first call) to the end of this one. */
  wallMs: number;
  /** Time the caller spent waiting in gather() for all-gathers (prefetched ones cost nothing here). */
  gatherWaitMs: number;
  /** Time step() spent waiting for reduce-scatters (and their accumulation) still in flight. */
  reduceWaitMs: number;
  /** The boundary's all-reduce across the replication group, and the norm / overflow all-reduces. */
  allReduceMs: number;
  /** Kernels the caller waited for at the boundary (norm, overflow check, optimizer). */
  kernelMs: number;
  /** The rest of the wall time: the caller's own compute between engine calls. */
  computeMs: number;
  /**
   * Bytes this rank moved, per group: partition, replication, and with hierarchical
   * groups the two stages of the partition group's all-gathers and reduce-scatters
   * under interNode and intraNode instead of partition.
   */
  bytes: Record<'partition' | 'replication' | 'intraNode' | 'interNode', GroupBytes>;
}

/** One event of the timeline (Chrome trace-event format, complete events). */
export interface TraceEvent {
  name: string;
  cat: string;
  ph: 'X' | 'M';
  /** Microseconds since the Unix epoch (all ranks of a machine share this clock). */
  ts: number;
  dur?: number;
  pid: number;
  tid: number;
  args?: Record<string, unknown>;
}

/** The tracks of a rank's timeline. */
export const TRACKS = { compute: 1, gather: 2, reduce: 3, allReduce: 4, kernel: 5 } as const;
export type Track = keyof typeof TRACKS;

const emptyBytes = (): GroupBytes => ({ allGather: 0, reduceScatter: 0, allReduce: 0 });

/** Microseconds since the epoch, sub-millisecond resolution. */
export function nowMicros(): number {
  return (performance.timeOrigin + performance.now()) * 1000;
}

/** Collects a rank's statistics and (when tracing) its events. */
export class StatsRecorder {
  private current: StepStats;
  private readonly history: StepStats[] = [];
  private readonly events: TraceEvent[] = [];
  private windowStart: number | undefined;
  private lastReturn: number | undefined;
  private waitMs = 0;

  constructor(
    private readonly rank: number,
    /** Whether events are kept (callers skip building names and completions otherwise). */
    readonly tracing: boolean,
    private readonly keep = 1000,
  ) {
    this.current = this.fresh(1);
  }

  private fresh(step: number): StepStats {
    return {
      step,
      microSteps: 0,
      skipped: false,
      wallMs: 0,
      gatherWaitMs: 0,
      reduceWaitMs: 0,
      allReduceMs: 0,
      kernelMs: 0,
      computeMs: 0,
      bytes: { partition: emptyBytes(), replication: emptyBytes(), intraNode: emptyBytes(), interNode: emptyBytes() },
    };
  }

  /** The caller enters the engine: the time since it last left was its compute. */
  enter(): number {
    const now = nowMicros();
    this.windowStart ??= now;
    if (this.tracing && this.lastReturn !== undefined && now > this.lastReturn) {
      this.event('compute', 'compute', this.lastReturn, now);
    }
    this.lastReturn = undefined;
    return now;
  }

  /** The caller leaves the engine. */
  leave(): void {
    this.lastReturn = nowMicros();
  }

  /** Time the caller waited, by kind. */
  waited(kind: 'gatherWaitMs' | 'reduceWaitMs' | 'allReduceMs' | 'kernelMs', startMicros: number): void {
    const ms = (nowMicros() - startMicros) / 1000;
    this.current[kind] += ms;
    this.waitMs += ms;
  }

  moved(group: keyof StepStats['bytes'], kind: keyof GroupBytes, bytes: number): void {
    this.current.bytes[group][kind] += bytes;
  }

  /** An op on the timeline, from its issue to its completion. */
  event(track: Track, name: string, startMicros: number, endMicros: number = nowMicros(), args?: Record<string, unknown>): void {
    if (!this.tracing) return;
    this.events.push({ name, cat: track, ph: 'X', ts: startMicros, dur: Math.max(0, endMicros - startMicros), pid: this.rank, tid: TRACKS[track], args });
  }

  microStep(): void {
    this.current.microSteps += 1;
  }

  /** Closes the current step's record. */
  finishStep(skipped: boolean): StepStats {
    const end = nowMicros();
    const done = this.current;
    done.skipped = skipped;
    done.wallMs = this.windowStart === undefined ? 0 : (end - this.windowStart) / 1000;
    done.computeMs = Math.max(0, done.wallMs - this.waitMs);
    this.history.push(done);
    if (this.history.length > this.keep) this.history.shift();
    this.current = this.fresh(done.step + (skipped ? 0 : 1));
    this.windowStart = end;
    this.waitMs = 0;
    return done;
  }

  /** Completed steps (the most recent `keep`), oldest first. */
  steps(): StepStats[] {
    return this.history.map((s) => structuredClone(s));
  }

  /** The figures of the step in progress. */
  inProgress(): StepStats {
    return structuredClone(this.current);
  }

  /** This rank's events, with the metadata naming its process and tracks. */
  traceEvents(): TraceEvent[] {
    const meta: TraceEvent[] = [
      { name: 'process_name', ph: 'M', cat: '__metadata', ts: 0, pid: this.rank, tid: 0, args: { name: `rank ${this.rank}` } },
      { name: 'process_sort_index', ph: 'M', cat: '__metadata', ts: 0, pid: this.rank, tid: 0, args: { sort_index: this.rank } },
      ...Object.entries(TRACKS).map(([name, tid]) => ({
        name: 'thread_name',
        ph: 'M' as const,
        cat: '__metadata',
        ts: 0,
        pid: this.rank,
        tid,
        args: { name },
      })),
    ];
    return [...meta, ...this.events];
  }
}
