/**
 * `mics bench partition`: the partition-group all-gather (or, with --op
 * reduce_scatter, the gradient reduce-scatter) of MiCS, hierarchical against flat,
 * on the groups createGroups() makes (S = --partition-size). Same table conventions
 * as the collectives bench: size is the gathered output (the reduce-scatter's
 * input), busbw = algbw x (S-1)/S, time is the median over iterations of the
 * slowest rank.
 */
import type { Communicator } from '../../comm/communicator';
import { allGather, reduceScatter } from '../../comm/collectives';
import { createGroups, destroyGroups } from '../../comm/mics-groups';
import type { BenchCell } from './collectives';
import type { SweepOptions } from './options';

export interface PartitionBenchOptions extends SweepOptions {
  partitionSize: number | 'auto';
  modes: ('hierarchical' | 'flat')[];
  /** all_gather (default) or reduce_scatter (sum). */
  op?: 'all_gather' | 'reduce_scatter';
}

export interface PartitionBenchRow {
  mode: 'hierarchical' | 'flat';
  partitionSize: number;
  nodesPerPartition: number;
  size: number;
  count: number;
  cell: BenchCell;
}

export async function runPartitionBench(world: Communicator, o: PartitionBenchOptions): Promise<{ rows: PartitionBenchRow[]; note: string }> {
  const groups = await createGroups(world, { partitionSize: o.partitionSize });
  try {
    const S = groups.partition.size;
    const nodes = new Set(groups.partition.worldRanks.map((r) => world.nodes[r])).size;
    const note = groups.layout.hierarchical ? `hierarchical: ${nodes} nodes x ${S / nodes} ranks` : `flat only: ${groups.layout.flatReason}`;
    const rows: PartitionBenchRow[] = [];
    for (let bytes = o.minBytes; bytes <= o.maxBytes; bytes *= o.stepFactor) {
      const n = Math.floor(bytes / 4 / S);
      if (n === 0) continue;
      const me = groups.partition.rank;
      const gather = o.op !== 'reduce_scatter';
      // all_gather: shard -> S shards; reduce_scatter: S blocks -> this rank's block (small integers: exact sums).
      const input = gather
        ? new Float32Array(n).map((_, i) => (me * 31 + i) % 1024)
        : new Float32Array(S * n).map((_, i) => (me * 7 + i) % 64);
      const output = new Float32Array(gather ? S * n : n);
      const expected = (i: number): number => {
        if (gather) return (Math.floor(i / n) * 31 + (i % n)) % 1024;
        let sum = 0;
        for (let r = 0; r < S; r++) sum += (r * 7 + me * n + i) % 64;
        return sum;
      };
      for (const mode of o.modes) {
        if (mode === 'hierarchical' && !groups.layout.hierarchical) continue;
        const hierarchical = mode === 'hierarchical';
        const run = (): Promise<void> =>
          gather ? allGather(groups, input, output, { hierarchical }) : reduceScatter(groups, input, output, { hierarchical });
        let wrong = 0;
        if (o.check) {
          output.fill(-1);
          await run();
          for (let i = 0; i < output.length; i++) if (output[i] !== expected(i)) wrong++;
        }
        for (let i = 0; i < o.warmup; i++) await run();
        await world.barrier();
        const times = new Float64Array(o.iters);
        for (let i = 0; i < o.iters; i++) {
          const start = process.hrtime.bigint();
          await run();
          times[i] = Number(process.hrtime.bigint() - start) / 1e3;
        }
        await world.allReduce(times, { op: 'max' });
        const wrongTotal = Float64Array.of(wrong);
        await world.allReduce(wrongTotal);
        const timeUs = Array.from(times).sort((a, b) => a - b)[Math.floor(o.iters / 2)];
        const size = S * n * 4;
        const algbw = size / (timeUs * 1e-6) / 1e9;
        rows.push({
          mode, partitionSize: S, nodesPerPartition: nodes, size, count: S * n,
          cell: { timeUs, algbw, busbw: (algbw * (S - 1)) / S, wrong: wrongTotal[0] },
        });
      }
    }
    return { rows, note };
  } finally {
    destroyGroups(groups);
  }
}

export function formatPartitionTable(rows: PartitionBenchRow[], header: string, op = 'all_gather'): string {
  const pad = (s: string | number, w: number): string => String(s).padStart(w);
  const lines = [
    `# partition ${op}: ${header}`,
    `# ${pad('mode', 12)} ${pad('S', 3)} ${pad('nodes', 5)} ${pad('size(B)', 10)} ${pad('count', 10)} ${pad('time(us)', 11)} ${pad('algbw', 7)} ${pad('busbw', 7)} ${pad('#wrong', 6)}`,
  ];
  for (const r of rows) {
    lines.push(
      `  ${pad(r.mode, 12)} ${pad(r.partitionSize, 3)} ${pad(r.nodesPerPartition, 5)} ${pad(r.size, 10)} ${pad(r.count, 10)} ${pad(r.cell.timeUs.toFixed(1), 11)} ${pad(r.cell.algbw.toFixed(3), 7)} ${pad(r.cell.busbw.toFixed(3), 7)} ${pad(r.cell.wrong, 6)}`,
    );
  }
  const sizes = [...new Set(rows.map((r) => r.size))];
  for (const size of sizes) {
    const h = rows.find((r) => r.size === size && r.mode === 'hierarchical');
    const f = rows.find((r) => r.size === size && r.mode === 'flat');
    if (h && f) lines.push(`# speed-up hierarchical over flat at ${size} B: ${(f.cell.timeUs / h.cell.timeUs).toFixed(2)}x`);
  }
  return lines.join('\n');
}
