/**
 * `mics simulate`: predicted scaling of strategies over GPU counts (table, JSON,
 * SVG); `--validate`: published figures against predictions; `--calibrate`: the
 * `emulated` preset from this machine's `mics bench` figures, and the comparison
 * with measured engine steps.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Command } from 'commander';
import { describeValue, invalidArgument } from '../core/errors';
import {
  compareStepBench,
  emulatedPresetFromBench,
  benchHeaderNumber,
  renderLineChart,
  runValidation,
  simulateScaling,
  STRATEGIES,
  type BenchJson,
  type ClusterPreset,
  type ScalingResult,
  type StepBenchResult,
  type Strategy,
  type ValidationReport,
} from '../plan';
import { describeModel, trainingFrom, trainingOptions, type RawOptions } from './plan';

const pad = (s: string | number, w: number): string => String(s).padStart(w);

/**
 * "16,32,64" or "16,32,...,512" (the two numbers before "..." give the ratio of a
 * doubling-style sequence up to the last number).
 */
export function parseGpuList(text: string): number[] {
  const parts = text.split(',').map((p) => p.trim()).filter((p) => p.length > 0);
  const out: number[] = [];
  const bad = (): never => {
    throw invalidArgument(`--gpus ${text} is not valid: use a comma list such as 16,32,64 or 16,32,...,512`);
  };
  for (let i = 0; i < parts.length; i++) {
    if (parts[i] === '...') {
      if (out.length < 2 || i !== parts.length - 2) bad();
      const [a, b] = out.slice(-2);
      const last = Number(parts[i + 1]);
      if (!(b > a) || b % a !== 0 || !Number.isInteger(last)) bad();
      for (let n = b * (b / a); n <= last; n *= b / a) out.push(n);
      if (out[out.length - 1] !== last) bad();
      break;
    }
    const n = Number(parts[i]);
    if (!Number.isInteger(n) || n < 1) bad();
    out.push(n);
  }
  if (out.length === 0) bad();
  return [...new Set(out)].sort((x, y) => x - y);
}

function parseStrategies(text: string): Strategy[] {
  const list = text.split(',').map((s) => s.trim());
  for (const s of list) {
    if (!STRATEGIES.includes(s as Strategy)) throw invalidArgument(`--strategy ${s} is not valid: use a comma list of ${STRATEGIES.join(', ')}`);
  }
  return list as Strategy[];
}

const gbText = (b: number): string => (b / 1e9).toFixed(1);

/** The scaling table. */
export function formatScaling(result: ScalingResult, header: string): string {
  const lines = [
    header,
    `micro-batch ${result.microBatch} per GPU, sequence ${result.sequence}; efficiency = throughput per GPU relative to the strategy's first row (weak scaling)`,
    `${pad('strategy', 8)} ${pad('GPUs', 5)} ${pad('S', 5)} ${pad('step', 9)} ${pad('TFLOPS', 7)} ${pad('samples/s', 10)} ${pad('eff.', 6)} ${pad('inter GB/node', 13)} ${pad('intra GB/GPU', 12)} ${pad('mem GiB', 8)}`,
  ];
  for (const r of result.rows) {
    const p = r.prediction;
    lines.push(
      `${pad(r.strategy, 8)} ${pad(r.gpus, 5)} ${pad(p.partitionSize, 5)} ${pad(`${p.stepTime.toFixed(2)} s`, 9)} ${pad(p.tflopsPerGpu.toFixed(1), 7)} ` +
        `${pad(p.samplesPerSecond.toFixed(1), 10)} ${pad(`${(r.weakScalingEfficiency * 100).toFixed(1)}%`, 6)} ${pad(gbText(p.interBytesPerNode), 13)} ` +
        `${pad(gbText(p.intraBytesPerGpu), 12)} ${pad((p.memory.total / 1024 ** 3).toFixed(1), 8)}${r.fits ? '' : '  does not fit'}`,
    );
  }
  return lines.join('\n');
}

/** The scaling curves (TFLOPS per GPU, or weak-scaling efficiency) as SVG. */
export function scalingSvg(result: ScalingResult, title: string, metric: 'tflops' | 'efficiency'): string {
  const strategies = [...new Set(result.rows.map((r) => r.strategy))];
  return renderLineChart({
    title,
    xLabel: 'GPUs',
    yLabel: metric === 'tflops' ? 'TFLOPS per GPU (predicted)' : 'weak-scaling efficiency (predicted)',
    ...(metric === 'efficiency' ? { yMax: 1 } : {}),
    series: strategies.map((s) => {
      const rows = result.rows.filter((r) => r.strategy === s);
      const fits = rows.every((r) => r.fits);
      return {
        name: fits ? s : `${s} (does not fit)`,
        dashed: !fits,
        points: rows.map((r) => ({ x: r.gpus, y: metric === 'tflops' ? r.prediction.tflopsPerGpu : r.weakScalingEfficiency })),
      };
    }),
  });
}

/** The validation table. */
export function formatValidation(report: ValidationReport): string {
  const lines = [
    `published figures against predictions (rule '${report.rule}'): ${report.rules}`,
    `${'figure'.padEnd(82)} ${pad('published', 9)} ${pad('predicted', 9)} ${pad('error', 7)}`,
  ];
  const show = (v: number, unit: string): string => (unit === 'fraction' ? `${(v * 100).toFixed(1)}%` : unit === 'x' ? `${v.toFixed(2)}x` : v.toFixed(1));
  for (const p of report.points) {
    lines.push(`${p.figure.padEnd(82)} ${pad(show(p.published, p.unit), 9)} ${pad(show(p.predicted, p.unit), 9)} ${pad(`${(p.error * 100).toFixed(1)}%`, 7)}`);
    lines.push(`    ${p.detail}`);
  }
  lines.push(`average absolute error ${(report.averageError * 100).toFixed(1)}%, maximum ${(report.maxError * 100).toFixed(1)}% (targets: 10% and 20%)`);
  lines.push('assumptions and sources of each figure: --json, or docs/scaling.md');
  return lines.join('\n');
}

/** Host copy bandwidth: the median of five 64 MiB Buffer copies. */
function measureCopyBandwidth(): number {
  const n = 64 * 1024 * 1024;
  const a = Buffer.alloc(n, 1), b = Buffer.alloc(n);
  const times: number[] = [];
  for (let i = 0; i < 6; i++) {
    const t0 = process.hrtime.bigint();
    a.copy(b);
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  times.shift();
  times.sort((x, y) => x - y);
  return n / times[2];
}

/** Runs `mics bench collectives --json` with local ranks and returns its JSON. */
function runBench(nproc: number, nodes: number, maxBytes: string): BenchJson {
  const cli = path.join(__dirname, 'mics.js');
  const args = [cli, 'bench', 'collectives', '-b', '4K', '-e', maxBytes, '-f', '16', '-n', '5', '-w', '2', '-c', '0',
    '-o', 'all_gather,reduce_scatter', '--nproc', String(nproc), '--emulate-nodes', String(nodes), '--json'];
  const result = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 300000 });
  if (result.status !== 0) {
    throw invalidArgument(`mics bench collectives --nproc ${nproc} --emulate-nodes ${nodes} failed (exit ${result.status}): ${result.stderr.trim().slice(-400)}`);
  }
  const line = result.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (!line) throw invalidArgument(`mics bench collectives printed no JSON: ${result.stdout.slice(-400)}`);
  return JSON.parse(line) as BenchJson;
}

function readJson(file: string, flag: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw invalidArgument(`${flag} ${file} cannot be read as JSON: ${(err as Error).message}`);
  }
}

/** The calibrated preset and, with step results, the comparison. */
function calibrate(raw: RawOptions): { preset: ClusterPreset; text: string; comparisons: ReturnType<typeof compareStepBench> } {
  let intra: BenchJson | BenchJson[], inter: BenchJson | BenchJson[];
  if (typeof raw.fromBench === 'string') {
    // Each file's header says how many nodes it ran on: one-node runs (several when every node ran one) and two-node runs.
    const files = raw.fromBench.split(',');
    const byNodes = new Map<number, BenchJson[]>();
    for (const file of files) {
      const bench = readJson(file, '--from-bench') as BenchJson;
      const nodes = benchHeaderNumber(bench, 'nodes', `--from-bench ${file}`);
      if (nodes !== 1 && nodes !== 2) {
        throw invalidArgument(`--from-bench ${file}: not a one-node or two-node run of mics bench collectives --json (its header: ${describeValue(bench.header)})`);
      }
      const runs = byNodes.get(nodes);
      if (runs) runs.push(bench);
      else byNodes.set(nodes, [bench]);
    }
    const oneNode = byNodes.get(1), twoNodes = byNodes.get(2);
    if (!oneNode || !twoNodes) {
      throw invalidArgument(`--from-bench ${raw.fromBench} is not valid: give one-node and two-node runs (a.json,b.json; several one-node runs may be given)`);
    }
    intra = oneNode;
    inter = twoNodes;
  } else {
    const nproc = Number(raw.nproc ?? 4);
    if (!Number.isInteger(nproc) || nproc < 2 || nproc > 256 || nproc % 2 !== 0) {
      throw invalidArgument(`--nproc ${String(raw.nproc)} is not valid: use an even number from 2 to 256 (local ranks on this machine)`);
    }
    const maxBytes = String(raw.maxbytes ?? '16M');
    intra = runBench(nproc, 1, maxBytes);
    inter = runBench(nproc, 2, maxBytes);
  }
  const preset = emulatedPresetFromBench({
    intra,
    inter,
    copyBandwidth: measureCopyBandwidth(),
    hostMemoryBytes: os.totalmem(),
    cores: os.cpus().length,
    host: os.hostname(),
    measuredAt: new Date().toISOString(),
  });
  const lines = [`emulated preset: ${preset.description}`];
  for (const s of preset.sources) lines.push(`  ${pad(s.what, 28)}  ${pad(s.value, 22)}  ${s.source}`);
  let comparisons: ReturnType<typeof compareStepBench> = [];
  if (typeof raw.stepBench === 'string') {
    const json = readJson(raw.stepBench, '--step-bench') as { results?: StepBenchResult[] } | StepBenchResult[];
    const results = Array.isArray(json) ? json : json.results;
    if (!Array.isArray(results)) throw invalidArgument(`--step-bench ${raw.stepBench}: expected an array of step results or {"results": [...]}`);
    comparisons = compareStepBench(preset, results);
    lines.push('', 'measured engine steps against predictions (target: within 25%):');
    for (const c of comparisons) {
      const setup = `W=${c.worldSize} S=${c.partitionSize}${c.hierarchical ? ' hierarchical' : ''}, accumulation ${c.accumulation}, compute ${c.computeSeconds.toFixed(2)} s`;
      lines.push(`  ${pad(c.strategy, 6)} ${setup}: measured ${c.measured.toFixed(4)} s, predicted ${c.predicted.toFixed(4)} s, error ${(c.error * 100).toFixed(1)}%`);
    }
    const errors = comparisons.map((c) => c.error);
    const within = errors.filter((e) => e <= 0.25).length;
    const average = errors.reduce((a, b) => a + b, 0) / Math.max(1, errors.length);
    lines.push(`${within} of ${errors.length} within 25%; average error ${(average * 100).toFixed(1)}%, maximum ${(Math.max(0, ...errors) * 100).toFixed(1)}%`);
  } else {
    lines.push('', 'no --step-bench FILE: step times not compared (mics bench step --json writes them)');
  }
  return { preset, text: lines.join('\n'), comparisons };
}

export function addSimulateCommand(program: Command): void {
  trainingOptions(
    program
      .command('simulate')
      .description('predict step time, TFLOPS and scaling of strategies over GPU counts (or --validate, --calibrate)')
      .option('--gpus <list>', 'GPU counts: 16,32,64 or 16,32,...,512', '16,32,...,512')
      .option('--strategy <list>', `comma list of ${STRATEGIES.join(', ')}`, 'mics,zero3,hsdp')
      .option('--svg <file>', 'also draw the curves into this SVG file')
      .option('--metric <m>', 'what the SVG draws: tflops or efficiency', 'tflops')
      .option('--validate', 'published figures against predictions, with average and maximum error')
      .option('--rule <rule>', "--validate: how unpublished S and micro-batch are filled in: planned, fastest or both", 'both')
      .option('--calibrate', "measure this machine's links with mics bench into an 'emulated' preset")
      .option('--from-bench <files>', '--calibrate: use saved `mics bench collectives --json` outputs (one-node and two-node runs, comma-separated) instead of running them')
      .option('--nproc <n>', '--calibrate: local ranks to measure with', '4')
      .option('--maxbytes <size>', '--calibrate: largest message', '16M')
      .option('--out <file>', '--calibrate: write the preset as JSON (use it with --cluster-file)')
      .option('--step-bench <file>', '--calibrate: compare measured engine steps (mics bench step --json) with predictions'),
  ).action((raw: RawOptions) => {
    if (raw.validate === true) {
      const rule = String(raw.rule);
      if (!['planned', 'fastest', 'both'].includes(rule)) throw invalidArgument(`--rule ${rule} is not valid: use planned, fastest or both`);
      const reports = (rule === 'both' ? (['planned', 'fastest'] as const) : ([rule] as ('planned' | 'fastest')[])).map((r) => runValidation(r));
      process.stdout.write(raw.json === true ? `${JSON.stringify(reports, null, 2)}\n` : `${reports.map(formatValidation).join('\n\n')}\n`);
      return;
    }
    if (raw.calibrate === true) {
      const { preset, text, comparisons } = calibrate(raw);
      if (typeof raw.out === 'string') fs.writeFileSync(raw.out, `${JSON.stringify(preset, null, 2)}\n`);
      process.stdout.write(raw.json === true ? `${JSON.stringify({ preset, comparisons }, null, 2)}\n` : `${text}\n${typeof raw.out === 'string' ? `preset written to ${raw.out}\n` : ''}`);
      return;
    }
    const o = trainingFrom(raw);
    const metric = String(raw.metric);
    if (metric !== 'tflops' && metric !== 'efficiency') throw invalidArgument(`--metric ${metric} is not valid: use tflops or efficiency`);
    const result = simulateScaling({ ...o, gpus: parseGpuList(String(raw.gpus)), strategies: parseStrategies(String(raw.strategy)) });
    const title = `${o.model.name} on ${o.cluster.name}`;
    if (typeof raw.svg === 'string') fs.writeFileSync(raw.svg, scalingSvg(result, title, metric));
    if (raw.json === true) {
      process.stdout.write(`${JSON.stringify({ model: o.model, cluster: o.cluster.name, ...result }, null, 2)}\n`);
    } else {
      process.stdout.write(`${formatScaling(result, `mics simulate: ${describeModel(o.model)} on ${o.cluster.description}`)}\n`);
    }
  });
}
