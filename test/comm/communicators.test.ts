/**
 * Communicator semantics on real processes: split (ncclCommSplit rules) and subgroup,
 * the transport each new group picks, two communicators with ops in flight at once,
 * issue-order completion, argument validation (and how it is reported), createGroups
 * cleaning up after a failed split, destroy, and
 * 1,000 back-to-back ops without growth of memory, file descriptors, threads or
 * shared-memory segments.
 */
import * as path from 'node:path';
import { describeRanks, killAllRanks, processAlive, repoRoot, runRanks, shmSegmentsOf, type RankResult } from '../helpers/ranks';

afterAll(() => killAllRanks());

/** Runs a worker scenario and returns each rank's RESULT json, failing with every rank's story otherwise. */
async function scenario(
  name: string,
  n: number,
  options: Record<string, unknown> = {},
  run: { nodes?: number | number[]; nodeArgs?: string[]; timeoutMs?: number } = {},
): Promise<Array<Record<string, any>>> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const results: RankResult[] = await runRanks({
    n,
    nodes: run.nodes,
    nodeArgs: run.nodeArgs,
    args: [name, JSON.stringify(options)],
    timeoutMs: run.timeoutMs ?? 60000,
  });
  for (const r of results) {
    if (r.code !== 0 || r.json === undefined || r.json.fatal || r.json.initError) {
      throw new Error(`scenario '${name}' failed:\n${describeRanks(results)}\n${JSON.stringify(r.json ?? {}).slice(0, 2000)}`);
    }
  }
  const pids = results.map((r) => r.pid);
  expect(pids.filter(processAlive)).toEqual([]);
  expect(shmSegmentsOf(pids)).toEqual([]);
  return results.map((r) => r.json);
}

describe('split(color, key) and subgroup(ranks)', () => {
  it('on 5 ranks of one node: groups by color, orders by key then rank, color -1/null get null, nested splits and subgroups work', async () => {
    const ranks = await scenario('split', 5, { subgroup: [4, 0] });
    for (const r of ranks) {
      const me = r.rank as number;
      // colors by parity; key = 5 - rank reverses the order inside each color
      const members = me % 2 === 0 ? [4, 2, 0] : [3, 1];
      expect(r.parity).toEqual({
        rank: members.indexOf(me),
        size: members.length,
        worldRanks: members,
        transport: 'shm',
        name: `world/split0:${me % 2}`,
        sum: members.reduce((a, b) => a + b, 0),
        gathered: members,
      });
      // equal keys: ties broken by parent rank
      expect(r.tied).toEqual({ rank: me, worldRanks: [0, 1, 2, 3, 4], gathered: [0, 1, 2, 3, 4] });
      // rank 0 passed -1 and rank 4 passed null: both got null; the rest formed one group
      if (me === 0 || me === 4) expect(r.partial).toBeNull();
      else expect(r.partial).toEqual({ rank: me - 1, size: 3, worldRanks: [1, 2, 3], broadcast: 1001, count: 3 });
      // the parity groups split again by (group rank >= 1)
      const nestedMembers = members.indexOf(me) >= 1 ? members.slice(1) : members.slice(0, 1);
      expect(r.nested.worldRanks).toEqual(nestedMembers);
      expect(r.nested.sum).toBe(nestedMembers.reduce((a: number, b: number) => a + b, 0));
      expect(r.nested.transport).toBe(nestedMembers.length === 1 ? 'self' : 'shm');
      // subgroup([4, 0]): group rank follows the list order; non-members got null
      if (me === 4 || me === 0) {
        expect(r.subgroup).toEqual({ rank: me === 4 ? 0 : 1, size: 2, worldRanks: [4, 0], transport: 'shm', gathered: [40, 0], prod: '5' });
        expect(r.subgroupAgain).toBe(2);
      } else {
        expect(r.subgroup).toBeNull();
      }
      expect(r.byNode).toEqual({ worldRanks: [0, 1, 2, 3, 4], transport: 'shm', sum: 10 });
      expect(r.worldAfter).toBe(5);
    }
  }, 90000);

  it('on 2 emulated nodes x 2 ranks: groups spanning nodes use TCP, groups inside a node use shared memory', async () => {
    const ranks = await scenario('split', 4, { subgroup: [3, 0] }, { nodes: 2 });
    for (const r of ranks) {
      const me = r.rank as number;
      const members = me % 2 === 0 ? [2, 0] : [3, 1];
      expect(r.parity.worldRanks).toEqual(members);
      expect(r.parity.transport).toBe('tcp');
      expect(r.parity.sum).toBe(members[0] + members[1]);
      expect(r.byNode).toEqual({ worldRanks: me < 2 ? [0, 1] : [2, 3], transport: 'shm', sum: me < 2 ? 1 : 5 });
      if (me === 3 || me === 0) {
        expect(r.subgroup).toEqual({ rank: me === 3 ? 0 : 1, size: 2, worldRanks: [3, 0], transport: 'tcp', gathered: [30, 0], prod: '4' });
      }
      expect(r.worldAfter).toBe(4);
    }
  }, 90000);
});

describe('two communicators with ops in flight at once', () => {
  it.each([
    ['one node (shm)', 1],
    ['2 emulated nodes (tcp)', 2],
  ])(
    'ops issued on the world and on a split child without awaiting (in opposite orders on even and odd ranks) all complete correctly: %s',
    async (_label, nodes) => {
      const ranks = await scenario('concurrent', 4, {}, { nodes });
      for (const r of ranks) {
        expect(r.wrong).toBe(0);
        expect([...r.order].sort()).toEqual(['child.allGather', 'child.allReduce', 'world.allReduce', 'world.broadcast']);
        // ops on one communicator settle in the order they were issued
        expect(r.settled).toEqual(Array.from({ length: 40 }, (_, k) => k));
      }
    },
    90000,
  );
});

describe('argument validation', () => {
  type Case = { how: string; error?: { code?: string; message?: string } };

  it('rejects every invalid argument with a MicsError MICS_INVALID_ARGUMENT: every async call returns a rejected promise, none throws', async () => {
    const ranks = await scenario('invalid', 2);
    for (const r of ranks) {
      const cases = r.cases as Record<string, Case & { error?: { micsError?: boolean } }>;
      expect(Object.keys(cases).length).toBe(34);
      const wrong: string[] = [];
      for (const [name, c] of Object.entries(cases)) {
        if (c.how !== 'rejected' || c.error?.code !== 'MICS_INVALID_ARGUMENT' || !c.error.message || c.error.micsError !== true) {
          wrong.push(`${name}: ${c.how} ${JSON.stringify(c.error)} (expected: a rejected MicsError MICS_INVALID_ARGUMENT)`);
        }
      }
      expect(wrong).toEqual([]);
      // messages say what was wrong
      expect(cases['Uint16Array without dtype'].error?.message).toMatch(/Uint16Array.*dtype/);
      expect(cases['unknown reduction op'].error?.message).toMatch(/'mean'.*sum, avg, max, min, prod/);
      expect(cases['unknown dtype'].error?.message).toMatch(/'f8'/);
      expect(cases['allGather output too small'].error?.message).toMatch(/allGather.*output/);
      expect(cases['allReduce partial overlap'].error?.message).toMatch(/overlap/);
      expect(cases['allGather input overlapping another slot'].error?.message).toMatch(/overlap/);
      expect(cases['reduceScatter output overlapping another slot'].error?.message).toMatch(/overlap/);
      // invalid calls do not poison the communicator
      expect(r.after).toBe(r.expectedAfter);
      expect(cases['SharedArrayBuffer input'].error?.message).toMatch(/SharedArrayBuffer/);
      expect(cases['resizable ArrayBuffer input'].error?.message).toMatch(/resizable/);
      expect(cases['resizable ArrayBuffer output'].error?.message).toMatch(/output.*resizable/);
      expect(cases['detached input'].error?.message).toMatch(/detached/);
      // a destroyed communicator refuses further use with a rejected promise saying so
      expect(r.destroyed.how).toBe('rejected');
      expect(r.destroyed.error.code).toBe('MICS_ABORTED');
      expect(r.destroyed.error.message).toMatch(/destroyed/);
    }
  }, 60000);
});

describe('createGroups checks that every rank asked for the same groups', () => {
  const run = async (perRank: object[], nodes = 2) => {
    const results = await runRanks({
      n: 4,
      nodes,
      script: path.join(repoRoot, 'test', 'fixtures', 'comm', 'create-groups.js'),
      args: [JSON.stringify({ perRank })],
      timeoutMs: 60000,
    });
    expect([results.every((r) => r.code === 0 && r.json !== undefined), describeRanks(results)]).toEqual([true, expect.any(String)]);
    return results;
  };

  it('the same request everywhere: the groups are made', async () => {
    for (const r of await run([{ partitionSize: 2 }, { partitionSize: 2 }, { partitionSize: 2 }, { partitionSize: 2 }])) {
      expect(r.json).toEqual({ rank: r.rank, partition: 2, replication: 2 });
    }
  }, 70000);

  it.each([
    // Rank 3 alone with S = 1 used to leave ranks 0, 1 and 3 with groups that did not fit together, and no error.
    ['one rank with another partition size', [{ partitionSize: 2 }, { partitionSize: 2 }, { partitionSize: 2 }, { partitionSize: 1 }], /world ranks \[0, 1, 2\]: partitionSize 2, hierarchical true; world ranks \[3\]: partitionSize 1, hierarchical true/],
    ['hierarchical on some ranks only', [{ partitionSize: 4 }, { partitionSize: 4, hierarchical: false }, { partitionSize: 4 }, { partitionSize: 4 }], /world ranks \[1\]: partitionSize 4, hierarchical false/],
  ])('%s: MICS_MISMATCH on every rank, naming the ranks and their requests', async (_name, perRank, message) => {
    for (const r of await run(perRank)) {
      expect([r.rank, r.json.code, r.json.message]).toEqual([r.rank, 'MICS_MISMATCH', expect.stringMatching(message)]);
    }
  }, 70000);
});

describe('createGroups when a split fails', () => {
  it('destroys the communicators its earlier splits made and rejects with the split\'s error', async () => {
    // 4 ranks, S = 2: rank 3 never makes the second (replication) split; the others time out there.
    const results = await runRanks({
      n: 4,
      script: path.join(repoRoot, 'test', 'fixtures', 'comm', 'groups-cleanup.js'),
      args: [JSON.stringify({ S: 2, stuck: 3, stuckMs: 5000 })],
      env: { MICS_TIMEOUT_MS: '1500' },
      timeoutMs: 60000,
    });
    expect([results.every((r) => r.code === 0 && r.json !== undefined), describeRanks(results)]).toEqual([true, expect.any(String)]);
    for (const r of results.slice(0, 3)) {
      // The store's timeout names keys; the error names the call, the group and the rank that never came.
      expect(r.json.error).toMatchObject({ code: 'MICS_TIMEOUT', op: 'split', group: 'world', peer: 3 });
      expect(r.json.error.message).toMatch(new RegExp(`^split on group 'world' \\(rank ${r.rank}\\): group rank\\(s\\) 3 never called it: `));
      // its partition communicator (made by the first split) was destroyed before the error came back
      expect(r.json.destroyed).toEqual([`partition[${r.rank < 2 ? 0 : 1}]`]);
    }
    expect(results[3].json).toEqual({ stuck: true });
  }, 70000);
});

describe('destroy()', () => {
  it.each([
    ['one node (shm)', 1],
    ['2 emulated nodes (tcp)', 2],
  ])('rejects the ops still in flight with MICS_ABORTED at once instead of hanging: %s', async (_label, nodes) => {
    const ranks = await scenario('destroyInFlight', 4, {}, { nodes });
    const err = ranks[0].error;
    expect(err.code).toBe('MICS_ABORTED');
    expect(err.message).toMatch(/destroyed/);
    expect(err.ms).toBeLessThan(10000); // the op's own timeout is 60 s
  }, 60000);
});

describe('1,000 back-to-back ops', () => {
  const MiB = 1024 * 1024;
  it.each([
    ['one node (shm)', 1],
    ['2 emulated nodes (tcp)', 2],
  ])(
    'do not grow memory, file descriptors, threads or shm segments; nor do 20 split/destroy cycles: %s',
    async (_label, nodes) => {
      const ranks = await scenario('leak', 4, { iterations: 1000, children: 20 }, { nodes, nodeArgs: ['--expose-gc'] });
      for (const r of ranks) {
        expect(r.wrong).toBe(0);
        const { before, after, beforeChildren, afterChildren } = r;
        // Noise allowance: RSS moves by a few pages; a leak of even 8 KiB per op would show.
        expect(after.rss - before.rss).toBeLessThan(8 * MiB);
        expect(after.external - before.external).toBeLessThan(1 * MiB);
        expect(after.fds).toBeLessThanOrEqual(before.fds + 2);
        expect(after.threads).toBe(before.threads);
        expect(after.shm).toBe(0);
        expect(afterChildren.rss - beforeChildren.rss).toBeLessThan(16 * MiB);
        expect(afterChildren.fds).toBeLessThanOrEqual(beforeChildren.fds + 2);
        expect(afterChildren.threads).toBe(beforeChildren.threads);
        expect(afterChildren.shm).toBe(0);
      }
    },
    90000,
  );
});
