/**
 * The hierarchical collectives of MiCS, multi-process on emulated nodes: the
 * all-gather (in one pass and pipelined) gives the same bytes as the flat
 * all-gather of the partition group, the reduce-scatter the same bytes as the flat
 * reduce-scatter, and a rank dying in any stage fails the calls that wait on it
 * with an error naming it.
 */
import * as path from 'node:path';
import { commFixtures, describeRanks, killAllRanks, runRanks } from '../helpers/ranks';

const script = path.join(commFixtures, 'hierarchical.js');
afterAll(killAllRanks);

interface CompareCase {
  dtype: string;
  n: number;
  wrong: number;
  differ: Record<string, boolean>;
}

const layouts = [
  { name: '2 nodes x 2 ranks', n: 4, nodes: 2 },
  { name: '2 nodes x 4 ranks', n: 8, nodes: 2 },
  { name: '4 nodes x 2 ranks', n: 8, nodes: 4 },
];

describe('hierarchical all-gather (partition group spanning every node)', () => {
  it.each(layouts)('$name: identical bytes to the flat all-gather, in and out of place, for uneven counts', async (layout) => {
    const results = await runRanks({
      n: layout.n,
      nodes: layout.nodes,
      script,
      args: ['compare', JSON.stringify({ S: layout.n, counts: [1, 7, 1001, 65537], dtypes: ['f32', 'bf16', 'i8', 'i64'] })],
      timeoutMs: 120000,
    });
    for (const r of results) {
      expect([r.rank, r.code, r.json?.fatal]).toEqual([r.rank, 0, undefined]);
      expect(r.json.hierarchical).toBe(true);
      for (const c of r.json.cases as CompareCase[]) {
        const where = `rank ${r.rank} ${c.dtype} n=${c.n}`;
        expect([where, c.wrong]).toEqual([where, 0]);
        expect([where, c.differ]).toEqual([
          where,
          { hierarchical: false, 'hierarchical-inplace': false, pipelined: false, 'pipelined-inplace': false, flat: false, 'flat-inplace': false },
        ]);
      }
    }
  }, 180000);

  it('a partition group of one node (S = G) is flat and still correct', async () => {
    const results = await runRanks({
      n: 4,
      nodes: 2,
      script,
      args: ['compare', JSON.stringify({ S: 2, counts: [3, 4099], dtypes: ['f32'] })],
    });
    for (const r of results) {
      expect(r.json.hierarchical).toBe(false);
      expect(r.json.partition).toBe('shm');
      for (const c of r.json.cases as CompareCase[]) expect(c.wrong).toBe(0);
    }
  }, 120000);

  it('a rank killed entering stage 2 fails its node-mates at once naming it (world rank too); the other node, whose stage 2 never needed it, fails at its next call', async () => {
    const victim = 1;
    const results = await runRanks({
      n: 4,
      nodes: 2,
      script,
      args: ['killStage2', JSON.stringify({ S: 4, victim, n: 100000 })],
      timeoutMs: 90000,
    });
    const context = describeRanks(results);
    for (const r of results) {
      if (r.rank === victim) {
        expect([context, r.signal]).toEqual([context, 'SIGKILL']);
        continue;
      }
      const sameNode = Math.floor(r.rank / 2) === Math.floor(victim / 2);
      // The victim's node-mates wait on it in stage 2; the other node's ranks finished
      // their own stage 2 (it does not include the victim) and fail on the next call.
      const failure = sameNode ? r.json.first : r.json.next;
      if (!sameNode) expect([context, r.json.first]).toEqual([context, { ok: true, correct: true }]);
      expect([context, failure?.error?.code]).toEqual([context, expect.stringMatching(/^MICS_(PEER_LOST|ABORTED)$/)]);
      // Sub-group errors also name the world rank of the peer they blame: the victim
      // for its node-mates; for the other node, the rank it waits on in stage 1 (the
      // victim, or a node-mate of the victim that failed and destroyed its groups).
      expect([context, typeof failure.error.worldPeer]).toEqual([context, 'number']);
      expect(failure.error.message).toContain(`is world rank ${failure.error.worldPeer}]`);
      if (sameNode) expect([context, failure.error.worldPeer]).toEqual([context, victim]);
      expect(failure.ms).toBeLessThan(10000);
    }
  }, 120000);

  it('pipelined: a rank killed entering stage 2 of the first chunk fails its node-mates at once naming it; the other node fails in that call or the next', async () => {
    const victim = 1;
    const results = await runRanks({
      n: 4,
      nodes: 2,
      script,
      // 400000 f32 per shard (1.6 MB): 13 chunks of 128 KiB, stage 2 as in-place broadcasts
      args: ['killStage2', JSON.stringify({ S: 4, victim, n: 400000, hook: 'broadcast' })],
      timeoutMs: 90000,
    });
    const context = describeRanks(results);
    for (const r of results) {
      if (r.rank === victim) {
        expect([context, r.signal]).toEqual([context, 'SIGKILL']);
        continue;
      }
      const sameNode = Math.floor(r.rank / 2) === Math.floor(victim / 2);
      const failure = r.json.first.error ? r.json.first : r.json.next;
      if (sameNode) expect([context, r.json.first.error?.worldPeer]).toEqual([context, victim]);
      expect([context, failure?.error?.code]).toEqual([context, expect.stringMatching(/^MICS_(PEER_LOST|ABORTED)$/)]);
      expect([context, typeof failure.error.worldPeer]).toEqual([context, 'number']);
      expect([context, failure.ms]).toEqual([context, expect.any(Number)]);
      expect(failure.ms).toBeLessThan(10000);
    }
  }, 120000);

  it.each([
    ['one pass', 100000],
    ['pipelined', 400000],
  ])('a rank killed in stage 1 (%s, %i elements per shard) fails every survivor within 3 s: its inter-node peer at once, and that peer aborts its node so ranks already waiting in stage 2 do not wait for the timeout', async (_how, n) => {
    const victim = 1; // 2 nodes x 2 ranks: inter-node groups {0,2} {1,3}, nodes {0,1} {2,3}
    const results = await runRanks({
      n: 4,
      nodes: 2,
      script,
      args: ['killStage1', JSON.stringify({ S: 4, victim, n })],
      timeoutMs: 90000,
    });
    const context = describeRanks(results);
    for (const r of results) {
      if (r.rank === victim) {
        expect([context, r.signal]).toEqual([context, 'SIGKILL']);
        continue;
      }
      const failure = r.json.first;
      expect([context, r.rank, failure?.error?.code]).toEqual([context, r.rank, expect.stringMatching(/^MICS_(PEER_LOST|ABORTED)$/)]);
      expect([context, r.rank, failure.ms < 3000]).toEqual([context, r.rank, true]);
    }
    // Rank 2 finished stage 1 with rank 0 and waits in stage 2 for rank 3, whose stage 1
    // failed: it hears of it through rank 3's abort, which carries the stage-1 cause.
    const rank2 = results.find((r) => r.rank === 2)!.json.first.error;
    expect([context, rank2.worldPeer]).toEqual([context, 3]);
    expect(rank2.message).toContain('stage 1');
  }, 120000);
});

interface ReduceCase {
  dtype: string;
  op: string;
  n: number;
  wrong: number;
  differ: Record<string, boolean>;
}

describe('hierarchical reduce-scatter (intra-node first, then across nodes)', () => {
  it.each(layouts)('$name: identical bytes to the flat reduce-scatter, in and out of place, for every reduction and uneven counts', async (layout) => {
    const results = await runRanks({
      n: layout.n,
      nodes: layout.nodes,
      script,
      args: [
        'compareReduce',
        JSON.stringify({ S: layout.n, counts: [1, 7, 4099], dtypes: ['f32', 'bf16', 'i8', 'u8', 'i64'], ops: ['sum', 'prod', 'max', 'min'] }),
      ],
      timeoutMs: 120000,
    });
    for (const r of results) {
      expect([r.rank, r.code, r.json?.fatal]).toEqual([r.rank, 0, undefined]);
      expect(r.json.hierarchical).toBe(true);
      expect((r.json.cases as ReduceCase[]).length).toBe(5 * 4 * 3);
      for (const c of r.json.cases as ReduceCase[]) {
        const where = `rank ${r.rank} ${c.dtype} ${c.op} n=${c.n}`;
        expect([where, c.wrong]).toEqual([where, 0]);
        expect([where, c.differ]).toEqual([
          where,
          { hierarchical: false, 'hierarchical-inplace': false, pipelined: false, 'pipelined-inplace': false, flat: false, 'flat-inplace': false },
        ]);
      }
    }
  }, 180000);

  it.each([
    [1, 'one pass', 100000],
    [2, 'one pass', 100000],
    [1, 'pipelined', 400000],
    [2, 'pipelined', 400000],
  ])('a rank killed entering stage %i (%s, %i elements per rank) fails every survivor within seconds, in that call or the next, naming a world rank', async (stage, _how, n) => {
    const victim = 1;
    const results = await runRanks({
      n: 4,
      nodes: 2,
      script,
      args: ['killReduce', JSON.stringify({ S: 4, victim, n, stage })],
      timeoutMs: 90000,
    });
    const context = describeRanks(results);
    for (const r of results) {
      if (r.rank === victim) {
        expect([context, r.signal]).toEqual([context, 'SIGKILL']);
        continue;
      }
      const failure = r.json.first.error ? r.json.first : r.json.next;
      if (!r.json.first.error) expect([context, r.json.first]).toEqual([context, { ok: true, correct: true }]);
      expect([context, r.rank, failure?.error?.code]).toEqual([context, r.rank, expect.stringMatching(/^MICS_(PEER_LOST|ABORTED)$/)]);
      expect([context, typeof failure.error.worldPeer]).toEqual([context, 'number']);
      expect(failure.ms).toBeLessThan(10000);
    }
    // The ranks that wait on the victim in the stage it died in fail in that call.
    // Stage 1: its node-mate (rank 0); stage 2: its inter-node peer (rank 3).
    const waiting = results.find((r) => r.rank === (stage === 1 ? 0 : 3))!;
    expect([context, waiting.json.first.error?.worldPeer]).toEqual([context, victim]);
  }, 120000);
});
