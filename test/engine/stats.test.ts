/**
 * engine.statistics() counts exactly the bytes the layout implies for every group,
 * and the timeline (trace: true) gathered to rank 0 is valid Chrome trace-event JSON
 * with one process (track group) per rank.
 */
import * as path from 'node:path';
import { describeRanks, killAllRanks, repoRoot, runRanks, type RankResult } from '../helpers/ranks';

const script = path.join(repoRoot, 'test', 'fixtures', 'engine', 'train.js');
afterAll(killAllRanks);

const sgd = { type: 'sgd', lr: 0.05, momentum: 0.9 };

async function run(config: object, W: number, nodes?: number): Promise<RankResult[]> {
  const results = await runRanks({ n: W, nodes, script, args: [JSON.stringify({ B: 4, steps: 3, seed: 7, ...config })], timeoutMs: 120000 });
  const context = describeRanks(results);
  for (const r of results) expect([context, r.code, r.json?.fatal, r.json?.error]).toEqual([context, 0, undefined, undefined]);
  return results;
}

interface Bytes {
  allGather: number;
  reduceScatter: number;
  allReduce: number;
}

describe('statistics: bytes per group per step', () => {
  it('W=4, S=2 (flat), A=2, fp32: every unit gathered once per step (small units persist), reduce-scattered every micro-step, all-reduced across 2 replicas once', async () => {
    const A = 2;
    const S = 2;
    const R = 2;
    const results = await run({ S, A, optimizer: sgd }, 4);
    for (const r of results) {
      const shardBytes = 4 * r.json.layout.shardNumel;
      const stats = r.json.stats as { step: number; microSteps: number; bytes: Record<string, Bytes> }[];
      expect(stats.map((s) => [s.step, s.microSteps])).toEqual([
        [1, 2],
        [2, 2],
        [3, 2],
      ]);
      for (const s of stats) {
        expect(s.bytes.partition).toEqual({ allGather: (S - 1) * shardBytes, reduceScatter: A * (S - 1) * shardBytes, allReduce: 0 });
        expect(s.bytes.replication).toEqual({ allGather: 0, reduceScatter: 0, allReduce: (2 * (R - 1) * shardBytes) / R });
        expect(s.bytes.interNode.allGather + s.bytes.intraNode.allGather).toBe(0);
      }
    }
  }, 120000);

  it('W=8 on 2 emulated nodes, S=8 (hierarchical), bf16 gathers, fp32 reduce: the all-gather moves (N-1) shards across nodes and the rest inside the node; the reduce-scatter reduces inside the node first, then crosses nodes with (N-1) shards', async () => {
    const results = await run({ S: 8, A: 1, optimizer: sgd, precision: 'bf16' }, 8, 2);
    const N = 2;
    const G = 4;
    for (const r of results) {
      const shard = r.json.layout.shardNumel;
      for (const s of r.json.stats as { bytes: Record<string, Bytes> }[]) {
        expect(s.bytes.interNode.allGather).toBe((N - 1) * shard * 2);
        expect(s.bytes.intraNode.allGather).toBe((G - 1) * N * shard * 2);
        // together: (S - 1) shards, as a flat all-gather would
        expect(s.bytes.interNode.allGather + s.bytes.intraNode.allGather).toBe(7 * shard * 2);
        expect(s.bytes.interNode.reduceScatter).toBe((N - 1) * shard * 4);
        expect(s.bytes.intraNode.reduceScatter).toBe((G - 1) * N * shard * 4);
        // together: (S - 1) shards, as a flat reduce-scatter would; nothing left on the partition group itself
        expect(s.bytes.interNode.reduceScatter + s.bytes.intraNode.reduceScatter).toBe(7 * shard * 4);
        expect(s.bytes.partition).toEqual({ allGather: 0, reduceScatter: 0, allReduce: 0 });
        expect(s.bytes.replication.allReduce).toBe(0); // S = W: no replicas
      }
    }
  }, 120000);

  it('the step times add up: waits and compute are non-negative and sum to the wall time', async () => {
    const results = await run({ S: 2, A: 2, optimizer: sgd }, 2);
    for (const s of results[0].json.stats as Record<string, number>[]) {
      for (const k of ['gatherWaitMs', 'reduceWaitMs', 'allReduceMs', 'kernelMs', 'computeMs']) expect(s[k]).toBeGreaterThanOrEqual(0);
      const parts = s.gatherWaitMs + s.reduceWaitMs + s.allReduceMs + s.kernelMs + s.computeMs;
      expect(Math.abs(parts - s.wallMs)).toBeLessThan(0.01 * s.wallMs + 0.01);
    }
  }, 120000);
});

describe('the timeline', () => {
  it('is valid trace-event JSON on rank 0 with one process per rank, named, and gathers, reductions, kernels and compute on their tracks', async () => {
    const W = 4;
    const results = await run({ S: 2, A: 2, optimizer: sgd, trace: true }, W);
    const trace = JSON.parse(JSON.stringify(results[0].json.trace)) as { traceEvents: { name: string; ph: string; pid: number; tid: number; ts: number; dur?: number; cat: string; args?: { name?: string } }[] };
    for (const r of results.slice(1)) expect(r.json.trace).toBeUndefined();
    const events = trace.traceEvents;
    const pids = new Set(events.map((e) => e.pid));
    expect([...pids].sort()).toEqual([0, 1, 2, 3]);
    for (let rank = 0; rank < W; rank++) {
      expect(events.find((e) => e.ph === 'M' && e.name === 'process_name' && e.pid === rank)?.args?.name).toBe(`rank ${rank}`);
      const cats = new Set(events.filter((e) => e.pid === rank && e.ph === 'X').map((e) => e.cat));
      expect([rank, [...cats].sort()]).toEqual([rank, ['allReduce', 'compute', 'gather', 'kernel', 'reduce']]);
    }
    for (const e of events.filter((x) => x.ph === 'X')) {
      expect(Number.isFinite(e.ts) && e.ts > 1.6e15).toBe(true); // microseconds since the epoch
      expect(e.dur).toBeGreaterThanOrEqual(0);
    }
  }, 120000);
});
