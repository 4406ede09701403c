/**
 * The `emulated` preset from this machine's measurements, and the comparison of
 * measured engine steps against predictions.
 *
 * Nothing is fitted: each number of the preset is read off one measurement of
 * `mics bench collectives` (nccl-tests' JSON rows):
 *
 * - intra-node bandwidth: all_gather bus bandwidth at the largest size, one node;
 * - collective start-up latency: all_gather time at the smallest size, one node;
 * - inter-node hop latency: the same on two nodes, less the one-node time (a
 *   two-node ring crosses the node boundary once per step);
 * - inter-node bandwidth: all_gather bus bandwidth at the largest size on two
 *   nodes (per node: one ring edge leaves each node);
 * - reduction rate: from the gap between reduce_scatter's and all_gather's bus
 *   bandwidth at the largest size (CPU ranks add what they reduce);
 * - copy bandwidth: one process copying a large buffer.
 *
 * Ranks beyond the host's cores share them; the figures are measured with the
 * rank count they will be used for, so the sharing is inside them (and only
 * valid for that count).
 *
 * @packageDocumentation
 */
import { describeValue, invalidArgument, valueText } from '../core/errors';
import { type ClusterPreset, type EmulatedDetails } from './presets';
import { simulateUnits, STRATEGIES, type Strategy, type TimedUnit } from './schedule';

/** One row of `mics bench collectives --json` (the fields used here). */
export interface BenchJsonRow {
  readonly op: string;
  readonly size: number;
  readonly outOfPlace: { readonly timeUs: number; readonly busbw: number };
}

/** The output of `mics bench collectives --json`. */
export interface BenchJson {
  readonly header: string;
  readonly rows: readonly BenchJsonRow[];
}

/** What {@link emulatedPresetFromBench} needs. */
export interface CalibrationInput {
  /** All-gather and reduce-scatter on one emulated node (shared memory). */
  readonly intra: BenchJson;
  /** All-gather on two emulated nodes (TCP between them). */
  readonly inter: BenchJson;
  /** Host copy bandwidth, bytes/s. */
  readonly copyBandwidth: number;
  /** Host memory, bytes (shared by all ranks). */
  readonly hostMemoryBytes: number;
  readonly cores: number;
  readonly host: string;
  readonly measuredAt: string;
}

function headerNumber(bench: BenchJson, key: string, what: string): number {
  const m = new RegExp(`\\b${key} (\\d+)`).exec(bench.header);
  if (!m) throw invalidArgument(`${what}: the bench header has no '${key} N' (got '${bench.header}'): pass the JSON of mics bench collectives --json`);
  return Number(m[1]);
}

function rows(bench: BenchJson, op: string, what: string): BenchJsonRow[] {
  if (!bench || !Array.isArray(bench.rows)) throw invalidArgument(`${what}: not the JSON of mics bench collectives --json (no rows)`);
  const found = bench.rows.filter((r) => r.op === op && r.outOfPlace && r.outOfPlace.timeUs > 0).sort((a, b) => a.size - b.size);
  if (found.length < 2) throw invalidArgument(`${what}: needs ${op} rows at two sizes or more, got ${found.length}`);
  return found;
}

/** Builds the `emulated` preset from measurements (see the module comment). */
export function emulatedPresetFromBench(x: CalibrationInput): ClusterPreset {
  const nIntra = headerNumber(x.intra, 'nranks', 'intra-node bench');
  const nodesIntra = headerNumber(x.intra, 'nodes', 'intra-node bench');
  const nInter = headerNumber(x.inter, 'nranks', 'inter-node bench');
  const nodesInter = headerNumber(x.inter, 'nodes', 'inter-node bench');
  if (nodesIntra !== 1) throw invalidArgument(`intra-node bench ran on ${nodesIntra} nodes: run it with --emulate-nodes 1`);
  if (nodesInter !== 2) throw invalidArgument(`inter-node bench ran on ${nodesInter} nodes: run it with --emulate-nodes 2`);
  const G = nInter / nodesInter;
  const agIntra = rows(x.intra, 'all_gather', 'intra-node bench');
  const rsIntra = rows(x.intra, 'reduce_scatter', 'intra-node bench');
  const agInter = rows(x.inter, 'all_gather', 'inter-node bench');
  const largeAg = agIntra[agIntra.length - 1], largeRs = rsIntra[rsIntra.length - 1], largeInter = agInter[agInter.length - 1];
  const intraBw = largeAg.outOfPlace.busbw * 1e9;
  const interBw = largeInter.outOfPlace.busbw * 1e9;
  const startup = agIntra[0].outOfPlace.timeUs * 1e-6;
  const interHop = Math.max(0, agInter[0].outOfPlace.timeUs * 1e-6 - startup);
  const gap = 1 / (largeRs.outOfPlace.busbw * 1e9) - 1 / intraBw;
  const reduceBandwidth = gap > 0 ? 1 / gap : undefined;
  const ranks = Math.max(nIntra, nInter);
  const measurements: EmulatedDetails['measurements'] = [
    { what: `all_gather, ${nIntra} ranks, 1 node, smallest`, bytes: agIntra[0].size, seconds: startup },
    { what: `all_gather, ${nIntra} ranks, 1 node, largest`, bytes: largeAg.size, seconds: largeAg.outOfPlace.timeUs * 1e-6 },
    { what: `reduce_scatter, ${nIntra} ranks, 1 node, largest`, bytes: largeRs.size, seconds: largeRs.outOfPlace.timeUs * 1e-6 },
    { what: `all_gather, ${nInter} ranks, 2 nodes, smallest`, bytes: agInter[0].size, seconds: agInter[0].outOfPlace.timeUs * 1e-6 },
    { what: `all_gather, ${nInter} ranks, 2 nodes, largest`, bytes: largeInter.size, seconds: largeInter.outOfPlace.timeUs * 1e-6 },
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
      { what: 'intra-node bandwidth', value: mb(intraBw), source: `all_gather busbw at ${largeAg.size} B, ${nIntra} ranks on 1 node (measured)` },
      { what: 'collective start-up latency', value: `${(startup * 1e6).toFixed(1)} us`, source: `all_gather at ${agIntra[0].size} B, 1 node (measured)` },
      { what: 'inter-node hop latency', value: `${(interHop * 1e6).toFixed(1)} us`, source: `all_gather at ${agInter[0].size} B on 2 nodes less the 1-node time (measured)` },
      { what: 'inter-node bandwidth', value: mb(interBw), source: `all_gather busbw at ${largeInter.size} B, ${nInter} ranks on 2 nodes (measured)` },
      {
        what: 'reduction rate',
        value: reduceBandwidth === undefined ? 'free (reduce_scatter as fast as all_gather)' : mb(reduceBandwidth),
        source: 'reduce_scatter vs all_gather busbw at the largest size, 1 node (measured)',
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
