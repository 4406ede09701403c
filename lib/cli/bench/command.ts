/**
 * `mics bench collectives`, `mics bench partition` and `mics bench step`. Each runs as
 * one rank when started by a launcher (RANK set), else starts --nproc local ranks of
 * itself.
 */
import type { Command } from 'commander';
import type { Communicator } from '../../comm/communicator';
import { init } from '../../comm/init';
import { formatTable, runCollectivesBench, warmupNote } from './collectives';
import { runLocalRanks } from './local-ranks';
import { BENCH_OPS, parseBenchOptions, parseSize } from './options';
import { formatPartitionTable, runPartitionBench } from './partition';
import { formatStepTable, parseStepOptions, runStepBench, simulatorResults, STEP_STRATEGIES } from './step';
import { ranksPerNodeOf } from '../../comm/mics-groups';

type RawOptions = Record<string, string | boolean | undefined>;

/** The sweep and process options every bench shares, with per-bench defaults. */
function sweepOptions(command: Command, defaults: { min: string; step: string; iters: string; warmup: string; emulateNodes: string }): Command {
  return command
    .option('-b, --minbytes <size>', 'smallest buffer (8, 1K, 64M)', defaults.min)
    .option('-e, --maxbytes <size>', 'largest buffer', '64M')
    .option('-f, --stepfactor <n>', 'multiply the size by this each row', defaults.step)
    .option('-n, --iters <n>', 'timed iterations per size', defaults.iters)
    .option('-w, --warmup_iters <n>', 'untimed iterations per size', defaults.warmup)
    .option('-c, --check <0|1>', 'verify results (seeded inputs, #wrong summed over ranks)', '1')
    .option('--nproc <n>', 'start this many local ranks (when not started by a launcher)', '4')
    .option('--emulate-nodes <n>', 'split the local ranks into this many emulated nodes', defaults.emulateNodes)
    .option('--timeout <ms>', 'per-op timeout', '300000')
    .option('--json', 'print the rows as JSON');
}

/** Runs `body` as one rank of a job, or starts the local ranks that will. */
async function asRank(raw: RawOptions, backend: string, body: (world: Communicator) => Promise<boolean>): Promise<void> {
  if (process.env.RANK === undefined) {
    process.exitCode = await runLocalRanks(Number(raw.nproc), Number(raw.emulateNodes));
    return;
  }
  const world = await init({ backend: backend as 'cpu' | 'nccl' | 'auto', timeoutMs: Number(raw.timeout) });
  try {
    if (!(await body(world))) process.exitCode = 1;
  } finally {
    world.destroy();
  }
}

export function addBenchCommands(program: Command): void {
  const bench = program.command('bench').description('benchmarks (nccl-tests conventions)');

  sweepOptions(bench.command('collectives'), { min: '8', step: '2', iters: '20', warmup: '5', emulateNodes: '1' })
    .description('all_gather / reduce_scatter / all_reduce / broadcast bandwidth, nccl-tests style')
    .option('-o, --op <ops>', `all or a comma list of ${BENCH_OPS.join(', ')}`, 'all')
    .option('-d, --datatype <type>', 'float, half, bfloat16, double, int8, uint8, int32, int64', 'float')
    .option('-r, --redop <op>', 'sum, avg, max, min, prod', 'sum')
    .option('--root <rank>', 'broadcast root', '0')
    .option('--backend <name>', 'cpu, nccl or auto', 'cpu')
    .option('-R, --local_register <0|1>', '1: allocate buffers with allocHost, read in place by same-node peers', '0')
    .option('-T, --timing <median|mean>', 'median: per iteration, slowest rank; mean: per call over back-to-back calls', 'median')
    .action(async (raw: RawOptions) => {
      const options = parseBenchOptions({ ...raw, warmupIters: raw.warmup_iters });
      await asRank(raw, String(raw.backend), async (world) => {
        const rows = await runCollectivesBench(world, options);
        if (world.rank === 0) {
          const header =
            `nranks ${world.size} nodes ${new Set(world.nodes).size} backend ${world.backend} transport ${world.transport} ` +
            `iters ${options.iters} warmup ${options.warmup} check ${options.check ? 1 : 0} register ${options.register ? 1 : 0} timing ${options.timing} ` +
            `directOps ${world.directOps}`; // ops that read the peers' inputs in place (-R 1 on one node)
          if (options.json) process.stdout.write(`${JSON.stringify({ header, rows })}\n`);
          else {
            for (const op of options.ops) process.stdout.write(`${formatTable(op, rows, header)}\n`);
            const note = warmupNote(options);
            if (note !== undefined) process.stdout.write(`${note}\n`);
          }
        }
        return rows.every((r) => r.outOfPlace.wrong + r.inPlace.wrong === 0);
      });
    });

  sweepOptions(bench.command('partition'), { min: '1M', step: '4', iters: '10', warmup: '3', emulateNodes: '2' })
    .description('MiCS partition-group all-gather: hierarchical vs flat (createGroups)')
    .option('-S, --partition-size <n>', "partition group size, or 'auto' (one node)", 'auto')
    .option('--mode <modes>', 'hierarchical, flat, or both', 'both')
    .option('-o, --op <op>', 'all_gather (parameters) or reduce_scatter (gradients, sum)', 'all_gather')
    .action(async (raw: RawOptions) => {
      const modeText = String(raw.mode);
      if (!['hierarchical', 'flat', 'both'].includes(modeText)) {
        throw new Error(`--mode ${modeText} is not valid: use hierarchical, flat or both`);
      }
      const op = String(raw.op);
      if (op !== 'all_gather' && op !== 'reduce_scatter') throw new Error(`-o ${op} is not valid: use all_gather or reduce_scatter`);
      const sizeText = String(raw.partitionSize);
      const options = {
        partitionSize: sizeText === 'auto' ? ('auto' as const) : Number(sizeText),
        minBytes: parseSize(String(raw.minbytes), '-b'),
        maxBytes: parseSize(String(raw.maxbytes), '-e'),
        stepFactor: Number(raw.stepfactor),
        iters: Number(raw.iters),
        warmup: Number(raw.warmup_iters),
        check: raw.check !== '0',
        modes: modeText === 'both' ? (['hierarchical', 'flat'] as ('hierarchical' | 'flat')[]) : [modeText as 'hierarchical' | 'flat'],
        op: op as 'all_gather' | 'reduce_scatter',
      };
      await asRank(raw, 'cpu', async (world) => {
        const { rows, note } = await runPartitionBench(world, options);
        if (world.rank === 0) {
          const header = `nranks ${world.size} nodes ${new Set(world.nodes).size} ${note}`;
          process.stdout.write(raw.json === true ? `${JSON.stringify({ header, rows })}\n` : `${formatPartitionTable(rows, header, op)}\n`);
        }
        return rows.every((r) => r.cell.wrong === 0);
      });
    });

  bench
    .command('step')
    .description('optimizer steps of the training engine: DDP, ZeRO-3 and MiCS on a synthetic model, compute emulated on a timer')
    .option('--strategy <list>', `all or a comma list of ${STEP_STRATEGIES.join(', ')}`, 'all')
    .option('--units <n>', 'units of the synthetic model', '8')
    .option('--unit-params <n>', 'parameters per unit', '2097152')
    .option('-a, --accumulation <n>', 'micro-steps per optimizer step', '4')
    .option('--precision <p>', 'fp32, bf16 or fp16 (gathered parameters and gradients)', 'bf16')
    .option('--reduce-dtype <d>', 'f32, bf16 or f16 (the reduce-scatter)', 'f32')
    .option('--compute-ms <ms>', "each unit's emulated forward time (backward: twice it)", '0')
    .option('-n, --iters <n>', 'timed optimizer steps', '5')
    .option('-w, --warmup_iters <n>', 'untimed optimizer steps', '1')
    .option('--overhead', 'also time each collective and kernel of a step alone and report the engine overhead')
    .option('--nproc <n>', 'start this many local ranks (when not started by a launcher)', '4')
    .option('--emulate-nodes <n>', 'split the local ranks into this many emulated nodes', '1')
    .option('--timeout <ms>', 'per-op timeout', '300000')
    .option('--json', 'print the rows as JSON')
    .action(async (raw: RawOptions) => {
      const options = parseStepOptions(raw);
      await asRank(raw, 'cpu', async (world) => {
        const ranksPerNode = ranksPerNodeOf(world.nodes);
        const rows = await runStepBench(world, ranksPerNode, options);
        if (world.rank === 0) {
          const header = `nranks ${world.size} nodes ${new Set(world.nodes).size} backend ${world.backend}`;
          // `results`: what mics simulate --calibrate --step-bench compares with its predictions
          const results = simulatorResults(rows, world.size, ranksPerNode, options);
          process.stdout.write(options.json ? `${JSON.stringify({ header, options, rows, results })}\n` : `${formatStepTable(rows, header, options)}\n`);
        }
        return rows.length > 0;
      });
    });
}
