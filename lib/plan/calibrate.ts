/**
 * The `emulated` preset from this machine's measurements, and the comparison of
 * measured engine steps against predictions.
 *
 * Nothing is fitted: each number of the preset is read off the measurements of
 * `mics bench collectives` (nccl-tests' JSON rows; every one-node run given, each
 * op out of place and in place) by a fixed rule:
 *
 * - intra-node bandwidth: the median all_gather bus bandwidth at the largest size,
 *   one node;
 * - collective start-up latency: the fastest all_gather of any size, one node. A
 *   fixed cost is at most the whole time of any op, and on shared cores the noise
 *   only adds time (a rank that is not running delays the op), so the lower
 *   envelope is the estimate; a median at the smallest size can read a scheduler
 *   time slice instead;
 * - inter-node hop latency: the same envelope on two nodes, less the one-node one
 *   (a two-node ring crosses the node boundary once per step);
 * - inter-node bandwidth: the median all_gather bus bandwidth at the largest size
 *   on two nodes (per node: one ring edge leaves each node);
 * - reduction rate: from the gap between reduce_scatter's and all_gather's median
 *   bus bandwidth at the largest size (CPU ranks add what they reduce);
 * - copy bandwidth: one process copying a large buffer.
 *
 * Ranks beyond the host's cores share them; the figures are measured with the
 * rank count they will be used for, so the sharing is inside them (and only
 * valid for that count). Bandwidths are medians because that sharing is part of
 * what a step sees.
 *
 * @packageDocumentation
 */
import { describeValue, invalidArgument, valueText } from '../core/errors';
import { type ClusterPreset, type EmulatedDetails } from './presets';
import { simulateUnits, STRATEGIES, type Strategy, type TimedUnit } from './schedule';

/** One timing of a bench row. */
export interface BenchTiming {
  readonly timeUs: number;
  readonly busbw: number;
}

/** One row of `mics bench collectives --json` (the fields used here). */
export interface BenchJsonRow {
  readonly op: string;
  readonly size: number;
  readonly outOfPlace: BenchTiming;
  /** Present unless the bench ran out of place only; the same op, so another sample. */
  readonly inPlace?: BenchTiming;
}

/** The output of `mics bench collectives --json`. */
export interface BenchJson {
  readonly header: string;
  readonly rows: readonly BenchJsonRow[];
}

/** What {@link emulatedPresetFromBench} needs. */
export interface CalibrationInput {
  /**
   * All-gather and reduce-scatter on one emulated node (shared memory): one run, or
   * one per emulated node when every node ran it at once (all are used).
   */
  readonly intra: BenchJson | readonly BenchJson[];
  /** All-gather on two emulated nodes (TCP between them): one run or several. */
  readonly inter: BenchJson | readonly BenchJson[];
  /** Host copy bandwidth, bytes/s. */
  readonly copyBandwidth: number;
  /** Host memory, bytes (shared by all ranks). */
  readonly hostMemoryBytes: number;
  readonly cores: number;
  readonly host: string;
  readonly measuredAt: string;
}

/**
 * The number after `key` in a bench's header (`nranks 4 nodes 1 ...`).
 * @throws a MicsError (MICS_INVALID_ARGUMENT) naming `what` when the header has none.
 */
export function benchHeaderNumber(bench: BenchJson, key: string, what: string): number {
  const header = bench && typeof bench.header === 'string' ? bench.header : '';
  const m = new RegExp(`\\b${key} (\\d+)`).exec(header);
  if (!m) throw invalidArgument(`${what}: the bench header has no '${key} N' (got '${header}'): pass the JSON of mics bench collectives --json`);
  return Number(m[1]);
}

/** One or several runs of the same bench layout; their rank and node counts must agree. */
function runsOf(input: BenchJson | readonly BenchJson[], what: string): { runs: readonly BenchJson[]; ranks: number; nodes: number } {
  const runs: readonly BenchJson[] = Array.isArray(input) ? input : [input as BenchJson];
  if (runs.length === 0) throw invalidArgument(`${what}: no runs given`);
  const ranks = benchHeaderNumber(runs[0], 'nranks', what), nodes = benchHeaderNumber(runs[0], 'nodes', what);
  for (const run of runs) {
    if (benchHeaderNumber(run, 'nranks', what) !== ranks || benchHeaderNumber(run, 'nodes', what) !== nodes) {
      throw invalidArgument(`${what}: the runs differ in layout ('${runs[0].header}' against '${run.header}'): give runs of one layout`);
    }
  }
  return { runs, ranks, nodes };
}

/** Every timing of `op` in every run (both placements), by size; at least two sizes. */
function samplesOf(runs: readonly BenchJson[], op: string, what: string): Map<number, BenchTiming[]> {
  const bySize = new Map<number, BenchTiming[]>();
  for (const run of runs) {
    if (!run || !Array.isArray(run.rows)) throw invalidArgument(`${what}: not the JSON of mics bench collectives --json (no rows)`);
    for (const r of run.rows) {
      if (r.op !== op) continue;
      for (const t of [r.outOfPlace, r.inPlace]) {
        if (!(t && t.timeUs > 0 && t.busbw > 0)) continue;
        const timings = bySize.get(r.size);
        if (timings) timings.push(t);
        else bySize.set(r.size, [t]);
      }
    }
  }
  if (bySize.size < 2) throw invalidArgument(`${what}: needs ${op} rows at two sizes or more, got ${bySize.size}`);
  return bySize;
}

function median(values: readonly number[]): number {
  const v = [...values].sort((x, y) => x - y);
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** The lower envelope of a bench: its fastest op of any size, seconds, and that op's size. */
function fastest(samples: Map<number, BenchTiming[]>): { seconds: number; bytes: number } {
  let best = { seconds: Infinity, bytes: 0 };
  for (const [bytes, timings] of samples) {
    for (const t of timings) if (t.timeUs * 1e-6 < best.seconds) best = { seconds: t.timeUs * 1e-6, bytes };
  }
  return best;
}

/** The median bus bandwidth at the largest size, bytes/s, that size, and the median time there. */
function largest(samples: Map<number, BenchTiming[]>): { bandwidth: number; bytes: number; seconds: number; count: number } {
  const bytes = Math.max(...samples.keys());
  const timings = samples.get(bytes) as BenchTiming[];
  return { bandwidth: median(timings.map((t) => t.busbw)) * 1e9, bytes, seconds: median(timings.map((t) => t.timeUs)) * 1e-6, count: timings.length };
}

/** Builds the `emulated` preset from measurements (see the module comment). */
export function emulatedPresetFromBench(x: CalibrationInput): ClusterPreset {
  const intraRuns = runsOf(x.intra, 'intra-node bench');
  const interRuns = runsOf(x.inter, 'inter-node bench');
  const nIntra = intraRuns.ranks, nInter = interRuns.ranks;
  if (intraRuns.nodes !== 1) throw invalidArgument(`intra-node bench ran on ${intraRuns.nodes} nodes: run it with --emulate-nodes 1`);
  if (interRuns.nodes !== 2) throw invalidArgument(`inter-node bench ran on ${interRuns.nodes} nodes: run it with --emulate-nodes 2`);
  const G = nInter / interRuns.nodes;
  const agIntra = samplesOf(intraRuns.runs, 'all_gather', 'intra-node bench');
  const rsIntra = samplesOf(intraRuns.runs, 'reduce_scatter', 'intra-node bench');
  const agInter = samplesOf(interRuns.runs, 'all_gather', 'inter-node bench');
  const largeAg = largest(agIntra), largeRs = largest(rsIntra), largeInter = largest(agInter);
  const fastIntra = fastest(agIntra), fastInter = fastest(agInter);
  const intraBw = largeAg.bandwidth;
  const interBw = largeInter.bandwidth;
  const startup = fastIntra.seconds;
  const interHop = Math.max(0, fastInter.seconds - startup);
  const gap = 1 / largeRs.bandwidth - 1 / intraBw;
  const reduceBandwidth = gap > 0 ? 1 / gap : undefined;
  const ranks = Math.max(nIntra, nInter);
  const oneNode = `${nIntra} ranks, 1 node, ${intraRuns.runs.length} run${intraRuns.runs.length > 1 ? 's' : ''}`;
  const twoNodes = `${nInter} ranks, 2 nodes, ${interRuns.runs.length} run${interRuns.runs.length > 1 ? 's' : ''}`;
  const measurements: EmulatedDetails['measurements'] = [
    { what: `all_gather, ${oneNode}, fastest op`, bytes: fastIntra.bytes, seconds: startup },
    { what: `all_gather, ${oneNode}, largest, median`, bytes: largeAg.bytes, seconds: largeAg.seconds },
    { what: `reduce_scatter, ${oneNode}, largest, median`, bytes: largeRs.bytes, seconds: largeRs.seconds },
    { what: `all_gather, ${twoNodes}, fastest op`, bytes: fastInter.bytes, seconds: fastInter.seconds },
    { what: `all_gather, ${twoNodes}, largest, median`, bytes: largeInter.bytes, seconds: largeInter.seconds },
  ];
  const mb = (b: number): string => `${(b / 1e6).toFixed(1)} MB/s`;
  return Object.freeze({
    name: 'emulated',
    description: `emulated cluster measured on ${x.host} (${x.cores} cores): 2 nodes x ${G} ranks, shared memory + TCP`,
    gpusPerNode: G,
    device: {
      name: 'CPU rank',
      memoryBytes: x.hostMemoryBytes / ranks,
      // Not measured: step comparisons replace compute with the measured compute time.
      peakFlops: x.cores * 2.5e9 * 16,
      computeEfficiency: 0.5,
      memoryBandwidth: x.copyBandwidth,
    },
    intra: { name: 'shm', bandwidth: intraBw, lineRate: x.copyBandwidth, hopLatency: 0 },
    inter: { name: 'TCP', bandwidth: interBw, lineRate: interBw, hopLatency: interHop },
    collectiveLatency: startup,
    allReduceLatencyFactor: 1,
    runtimeReserveBytes: 0.25 * 1024 ** 3,
    ...(reduceBandwidth !== undefined ? { reduceBandwidth } : {}),
    sources: Object.freeze([
      { what: 'intra-node bandwidth', value: mb(intraBw), source: `median all_gather busbw at ${largeAg.bytes} B of ${largeAg.count} (${oneNode}; measured)` },
      { what: 'collective start-up latency', value: `${(startup * 1e6).toFixed(1)} us`, source: `fastest all_gather of any size (${fastIntra.bytes} B; ${oneNode}; measured)` },
      {
        what: 'inter-node hop latency',
        value: `${(interHop * 1e6).toFixed(1)} us`,
        source: `fastest all_gather of any size on 2 nodes (${fastInter.bytes} B) less the 1-node one (measured)`,
      },
      { what: 'inter-node bandwidth', value: mb(interBw), source: `median all_gather busbw at ${largeInter.bytes} B of ${largeInter.count} (${twoNodes}; measured)` },
      {
        what: 'reduction rate',
        value: reduceBandwidth === undefined ? 'free (reduce_scatter as fast as all_gather)' : mb(reduceBandwidth),
        source: 'reduce_scatter vs all_gather median busbw at the largest size, 1 node (measured)',
      },
      { what: 'copy bandwidth', value: mb(x.copyBandwidth), source: 'one process copying 64 MiB (measured)' },
      { what: 'compute', value: 'not measured', source: 'step comparisons use the compute time the step benchmark measures' },
    ]),
    emulated: {
      measuredAt: x.measuredAt,
      host: x.host,
      cores: x.cores,
      ranksPerNode: G,
      nodes: 2,
      copyBandwidth: x.copyBandwidth,
      measurements,
    },
  });
}

/**
 * One measured engine step, as the step benchmark reports it (`mics bench step
 * --json`; the hook {@link compareStepBench} consumes these).
 */
export interface StepBenchResult {
  readonly strategy: Strategy;
  readonly worldSize: number;
  readonly ranksPerNode: number;
  readonly partitionSize: number;
  readonly hierarchical?: boolean;
  /** Padded unit sizes, elements, in forward order. */
  readonly unitElements: readonly number[];
  readonly gatherBytes: number;
  readonly reduceBytes: number;
  readonly accumulation: number;
  readonly prefetchDepth?: number;
  /** Measured seconds of the caller's compute per micro-step (forward and backward). */
  readonly computeSeconds: number;
  /** Share of `computeSeconds` spent in forward (default 1/3). */
  readonly forwardFraction?: number;
  /** Measured seconds per optimizer step (median). */
  readonly stepSeconds: number;
}

/** A measured step next to its prediction. */
export interface StepComparison {
  readonly strategy: Strategy;
  readonly worldSize: number;
  readonly partitionSize: number;
  readonly hierarchical: boolean;
  readonly accumulation: number;
  /** The measured compute per optimizer step the prediction was given, seconds. */
  readonly computeSeconds: number;
  readonly measured: number;
  readonly predicted: number;
  /** |predicted - measured| / measured. */
  readonly error: number;
}

/**
 * The hook for `mics bench step`: predicts each measured step on `cluster`
 * (normally the calibrated `emulated` preset) with the engine's schedule, given
 * the measured compute, and reports the error. The target is 25%.
 */
export function compareStepBench(cluster: ClusterPreset, results: readonly StepBenchResult[]): StepComparison[] {
  return results.map((r, i) => {
    const where = `step bench result ${i}`;
    if (!STRATEGIES.includes(r.strategy)) throw invalidArgument(`${where}: unknown strategy '${valueText(r.strategy)}': use ${STRATEGIES.join(', ')}`);
    for (const key of ['worldSize', 'ranksPerNode', 'partitionSize', 'accumulation'] as const) {
      if (!Number.isInteger(r[key]) || r[key] < 1) throw invalidArgument(`${where}: ${key} must be a positive integer, got ${describeValue(r[key])}`);
    }
    for (const key of ['computeSeconds', 'stepSeconds', 'gatherBytes', 'reduceBytes'] as const) {
      if (!(typeof r[key] === 'number' && r[key] >= 0)) throw invalidArgument(`${where}: ${key} must be a number >= 0, got ${describeValue(r[key])}`);
    }
    if (!Array.isArray(r.unitElements) || r.unitElements.length === 0) throw invalidArgument(`${where}: unitElements must list the unit sizes`);
    const total = r.unitElements.reduce((a, b) => a + b, 0);
    const fwd = r.forwardFraction ?? 1 / 3;
    const units: TimedUnit[] = r.unitElements.map((e) => ({
      elements: e,
      forwardSeconds: (r.computeSeconds * fwd * e) / total,
      backwardSeconds: (r.computeSeconds * (1 - fwd) * e) / total,
    }));
    const schedule = simulateUnits({
      cluster: { ...cluster, gpusPerNode: r.ranksPerNode },
      worldSize: r.worldSize,
      strategy: r.strategy,
      partitionSize: r.partitionSize,
      hierarchical: r.hierarchical,
      units,
      accumulation: r.accumulation,
      gatherBytes: r.gatherBytes,
      reduceBytes: r.reduceBytes,
      optimizerBytesPerParameter: 30,
      prefetchDepth: r.prefetchDepth ?? 1,
    });
    return {
      strategy: r.strategy,
      worldSize: r.worldSize,
      partitionSize: schedule.groups.partitionSize,
      hierarchical: schedule.groups.hierarchical,
      accumulation: r.accumulation,
      computeSeconds: r.computeSeconds * r.accumulation,
      measured: r.stepSeconds,
      predicted: schedule.stepTime,
      error: r.stepSeconds > 0 ? Math.abs(schedule.stepTime - r.stepSeconds) / r.stepSeconds : Infinity,
    };
  });
}
