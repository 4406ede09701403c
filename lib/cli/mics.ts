#!/usr/bin/env node
/** The `mics` command: info (and, as they land, plan, simulate, bench). */
import { Command } from 'commander';
import { collectInfo, formatInfo } from './info';
import { packageVersion } from '../version';
import { init } from '../comm/init';
import { parseBenchOptions, BENCH_OPS } from './bench/options';
import { formatTable, runCollectivesBench } from './bench/collectives';
import { runLocalRanks } from './bench/local-ranks';
import { formatPartitionTable, runPartitionBench } from './bench/partition';
import { parseSize } from './bench/options';

export function buildProgram(): Command {
  const program = new Command('mics')
    .description('MiCS sharded-training communication for Node.js')
    .version(packageVersion);

  program
    .command('info')
    .description('print the version, build variant and the backends usable on this machine')
    .option('--json', 'print machine-readable JSON')
    .action((options: { json?: boolean }) => {
      const report = collectInfo();
      process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatInfo(report)}\n`);
    });

  const bench = program.command('bench').description('benchmarks (nccl-tests conventions)');
  bench
    .command('collectives')
    .description('all_gather / reduce_scatter / all_reduce / broadcast bandwidth, nccl-tests style')
    .option('-b, --minbytes <size>', 'smallest total buffer (8, 1K, 64M)', '8')
    .option('-e, --maxbytes <size>', 'largest total buffer', '64M')
    .option('-f, --stepfactor <n>', 'multiply the size by this each row', '2')
    .option('-n, --iters <n>', 'timed iterations per size', '20')
    .option('-w, --warmup_iters <n>', 'untimed iterations per size', '5')
    .option('-c, --check <0|1>', 'verify results (seeded inputs, #wrong summed over ranks)', '1')
    .option('-o, --op <ops>', `all or a comma list of ${BENCH_OPS.join(', ')}`, 'all')
    .option('-d, --datatype <type>', 'float, half, bfloat16, double, int8, uint8, int32, int64', 'float')
    .option('-r, --redop <op>', 'sum, avg, max, min, prod', 'sum')
    .option('--root <rank>', 'broadcast root', '0')
    .option('--backend <name>', 'cpu, nccl or auto', 'cpu')
    .option('--nproc <n>', 'start this many local ranks (when not started by a launcher)', '4')
    .option('--emulate-nodes <n>', 'split the local ranks into this many emulated nodes', '1')
    .option('--timeout <ms>', 'per-op timeout', '300000')
    .option('--json', 'print the rows as JSON')
    .action(async (raw: Record<string, string | boolean | undefined>) => {
      const options = parseBenchOptions({ ...raw, warmupIters: raw.warmup_iters });
      if (process.env.RANK === undefined) {
        process.exitCode = await runLocalRanks(Number(raw.nproc), Number(raw.emulateNodes));
        return;
      }
      const world = await init({ backend: raw.backend as 'cpu' | 'nccl' | 'auto', timeoutMs: Number(raw.timeout) });
      try {
        const rows = await runCollectivesBench(world, options);
        if (world.rank === 0) {
          const nodes = new Set(world.nodes).size;
          const header = `nranks ${world.size} nodes ${nodes} backend ${world.backend} transport ${world.transport} iters ${options.iters} warmup ${options.warmup} check ${options.check ? 1 : 0}`;
          if (options.json) process.stdout.write(`${JSON.stringify({ header, rows })}\n`);
          else for (const op of options.ops) process.stdout.write(`${formatTable(op, rows, header)}\n`);
        }
        if (rows.some((r) => r.outOfPlace.wrong + r.inPlace.wrong > 0)) process.exitCode = 1;
      } finally {
        world.destroy();
      }
    });

  bench
    .command('partition')
    .description('MiCS partition-group all-gather: hierarchical vs flat (createGroups)')
    .option('-S, --partition-size <n>', "partition group size, or 'auto' (one node)", 'auto')
    .option('-b, --minbytes <size>', 'smallest gathered output', '1M')
    .option('-e, --maxbytes <size>', 'largest gathered output', '64M')
    .option('-f, --stepfactor <n>', 'multiply the size by this each row', '4')
    .option('-n, --iters <n>', 'timed iterations per size', '10')
    .option('-w, --warmup_iters <n>', 'untimed iterations per size', '3')
    .option('-c, --check <0|1>', 'verify results', '1')
    .option('--mode <modes>', 'hierarchical, flat, or both', 'both')
    .option('--nproc <n>', 'start this many local ranks (when not started by a launcher)', '4')
    .option('--emulate-nodes <n>', 'split the local ranks into this many emulated nodes', '2')
    .option('--timeout <ms>', 'per-op timeout', '300000')
    .option('--json', 'print the rows as JSON')
    .action(async (raw: Record<string, string | boolean | undefined>) => {
      if (process.env.RANK === undefined) {
        process.exitCode = await runLocalRanks(Number(raw.nproc), Number(raw.emulateNodes));
        return;
      }
      const modeText = String(raw.mode);
      if (!['hierarchical', 'flat', 'both'].includes(modeText)) {
        throw new Error(`--mode ${modeText} is not valid: use hierarchical, flat or both`);
      }
      const sizeText = String(raw.partitionSize);
      const options = {
        partitionSize: sizeText === 'auto' ? ('auto' as const) : Number(sizeText),
        minBytes: parseSize(String(raw.minbytes), '-b'),
        maxBytes: parseSize(String(raw.maxbytes), '-e'),
        stepFactor: Number(raw.stepfactor),
        iters: Number(raw.iters),
        warmup: Number(raw.warmup_iters),
        check: raw.check !== '0',
        modes: modeText === 'both' ? (['hierarchical', 'flat'] as const).slice() : [modeText as 'hierarchical' | 'flat'],
      };
      const world = await init({ backend: 'cpu', timeoutMs: Number(raw.timeout) });
      try {
        const { rows, note } = await runPartitionBench(world, options);
        if (world.rank === 0) {
          const header = `nranks ${world.size} nodes ${new Set(world.nodes).size} ${note}`;
          process.stdout.write(raw.json === true ? `${JSON.stringify({ header, rows })}\n` : `${formatPartitionTable(rows, header)}\n`);
        }
        if (rows.some((r) => r.cell.wrong > 0)) process.exitCode = 1;
      } finally {
        world.destroy();
      }
    });

  return program;
}

if (require.main === module) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      process.stderr.write(`mics: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    });
}
