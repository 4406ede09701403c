/**
 * MiCS group arithmetic (lib/comm/groups.ts), as specifications: hand-computed
 * tables from shared/reference/mics.md, every awkward case and error message, a
 * property sweep over many (W, G, S), and a pure-JS simulation of the hierarchical
 * all-gather layout checked against the flat result.
 */
import { MicsError } from '../../lib/core/errors';
import {
  MAX_WORLD_SIZE,
  divisors,
  hierarchicalPartitionSizes,
  hierarchicalSlots,
  planGroups,
  singleNodePartitionSizes,
  type GroupPlan,
  type HierarchicalSlots,
} from '../../lib/comm/groups';

/** [start, start+1, ..., start+length-1] */
function seq(start: number, length: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < length; i++) out.push(start + i);
  return out;
}

/** The error thrown by fn, which must be a MicsError with the stable code. */
function argumentError(fn: () => unknown): MicsError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(MicsError);
    expect(e).toBeInstanceOf(Error);
    expect((e as MicsError).code).toBe('MICS_INVALID_ARGUMENT');
    return e as MicsError;
  }
  throw new Error('expected a MicsError, nothing was thrown');
}

const DIVISORS_32 = 'valid partition sizes for worldSize 32 (divisors of 32): 1, 2, 4, 8, 16, 32';

describe('planGroups: the reference example W=32, G=8, S=16', () => {
  const plan = planGroups({ worldSize: 32, ranksPerNode: 8, partitionSize: 16 });

  it('sizes', () => {
    expect(plan.worldSize).toBe(32);
    expect(plan.ranksPerNode).toBe(8);
    expect(plan.partitionSize).toBe(16);
    expect(plan.replicationSize).toBe(2);
    expect(plan.numNodes).toBe(4);
    expect(plan.hierarchical).toBe(true);
    expect(plan.nodesPerPartition).toBe(2);
    expect(plan.flatCause).toBeUndefined();
    expect(plan.flatReason).toBeUndefined();
  });

  it('partition groups are the blocks {0..15}, {16..31}', () => {
    expect(plan.partitionGroups).toEqual([seq(0, 16), seq(16, 16)]);
  });

  it('replication groups are the columns {0,16}, {1,17}, ..., {15,31}', () => {
    expect(plan.replicationGroups).toEqual(seq(0, 16).map((i) => [i, i + 16]));
    expect(plan.replicationGroups[0]).toEqual([0, 16]);
    expect(plan.replicationGroups[15]).toEqual([15, 31]);
  });

  it('intra-node groups are the nodes {0..7}, {8..15}, {16..23}, {24..31}', () => {
    expect(plan.intraNodeGroups).toEqual([seq(0, 8), seq(8, 8), seq(16, 8), seq(24, 8)]);
  });

  it('inter-node groups are {0,8}, {1,9}, ..., {7,15}, {16,24}, ..., {23,31}', () => {
    expect(plan.interNodeGroups).toEqual([
      [0, 8], [1, 9], [2, 10], [3, 11], [4, 12], [5, 13], [6, 14], [7, 15],
      [16, 24], [17, 25], [18, 26], [19, 27], [20, 28], [21, 29], [22, 30], [23, 31],
    ]);
  });

  it('forRank(19): node 2, slice 3 of replica 1, local index 3 on the first node of its group', () => {
    expect(plan.forRank(19)).toEqual({
      rank: 19,
      node: 2,
      localRank: 3,
      partition: seq(16, 16),
      partitionIndex: 1,
      partitionRank: 3,
      replication: [3, 19],
      replicationRank: 1,
      intraNode: seq(16, 8),
      intraNodeRank: 3,
      interNode: [19, 27],
      interNodeRank: 0,
    });
  });

  it('forRank(13): second node of the first partition group', () => {
    const r = plan.forRank(13);
    expect(r.partition).toEqual(seq(0, 16));
    expect(r.partitionRank).toBe(13);
    expect(r.replication).toEqual([13, 29]);
    expect(r.intraNode).toEqual(seq(8, 8));
    expect(r.interNode).toEqual([5, 13]);
    expect(r.interNodeRank).toBe(1);
    expect(r.intraNodeRank).toBe(5);
  });

  it('is immutable: one plan is shared by every caller', () => {
    expect(Object.isFrozen(plan)).toBe(true);
    expect(Object.isFrozen(plan.partitionGroups)).toBe(true);
    expect(Object.isFrozen(plan.partitionGroups[0])).toBe(true);
    expect(Object.isFrozen(plan.interNodeGroups[3])).toBe(true);
    expect(() => (plan.partitionGroups[0] as number[]).push(99)).toThrow(TypeError);
  });
});

describe('planGroups: W=8, G=4, S=8 (ZeRO-3 over two nodes, hierarchical)', () => {
  const plan = planGroups({ worldSize: 8, ranksPerNode: 4, partitionSize: 8 });

  it('one partition group, singleton replication groups', () => {
    expect(plan.partitionGroups).toEqual([seq(0, 8)]);
    expect(plan.replicationGroups).toEqual(seq(0, 8).map((i) => [i]));
    expect(plan.replicationSize).toBe(1);
  });

  it('intra {0..3}, {4..7}; inter {0,4}, {1,5}, {2,6}, {3,7}', () => {
    expect(plan.hierarchical).toBe(true);
    expect(plan.nodesPerPartition).toBe(2);
    expect(plan.intraNodeGroups).toEqual([[0, 1, 2, 3], [4, 5, 6, 7]]);
    expect(plan.interNodeGroups).toEqual([[0, 4], [1, 5], [2, 6], [3, 7]]);
  });

  it('forRank(6)', () => {
    expect(plan.forRank(6)).toEqual({
      rank: 6, node: 1, localRank: 2,
      partition: seq(0, 8), partitionIndex: 0, partitionRank: 6,
      replication: [6], replicationRank: 0,
      intraNode: [4, 5, 6, 7], intraNodeRank: 2,
      interNode: [2, 6], interNodeRank: 1,
    });
  });
});

describe('planGroups: flat layouts', () => {
  it('S == G: each partition group is exactly one node, flat', () => {
    const plan = planGroups({ worldSize: 16, ranksPerNode: 8, partitionSize: 8 });
    expect(plan.partitionGroups).toEqual([seq(0, 8), seq(8, 8)]);
    expect(plan.replicationGroups).toEqual(seq(0, 8).map((i) => [i, i + 8]));
    expect(plan.hierarchical).toBe(false);
    expect(plan.flatCause).toBe('single-node');
    expect(plan.flatReason).toBe(
      'partitionSize 8 keeps every partition group inside one node (ranksPerNode 8), so a flat ' +
        'all-gather over the fast intra-node links is used; hierarchical partition sizes for ' +
        'worldSize 16, ranksPerNode 8: 16',
    );
    expect(plan.intraNodeGroups).toEqual([]);
    expect(plan.interNodeGroups).toEqual([]);
    expect(plan.nodesPerPartition).toBeUndefined();
    const r = plan.forRank(10);
    expect(r).toEqual({
      rank: 10, node: 1, localRank: 2,
      partition: seq(8, 8), partitionIndex: 1, partitionRank: 2,
      replication: [2, 10], replicationRank: 1,
    });
    expect('intraNode' in r).toBe(false);
    expect('interNode' in r).toBe(false);
  });

  it('S < G: several partition groups per node, flat', () => {
    const plan = planGroups({ worldSize: 16, ranksPerNode: 8, partitionSize: 4 });
    expect(plan.partitionGroups).toEqual([seq(0, 4), seq(4, 4), seq(8, 4), seq(12, 4)]);
    expect(plan.replicationGroups).toEqual(seq(0, 4).map((i) => [i, i + 4, i + 8, i + 12]));
    expect(plan.replicationSize).toBe(4);
    expect(plan.hierarchical).toBe(false);
    expect(plan.flatCause).toBe('single-node');
    expect(plan.flatReason).toMatch(/^partitionSize 4 keeps every partition group inside one node/);
    expect(plan.forRank(13)).toMatchObject({ node: 1, localRank: 5, partitionIndex: 3, partitionRank: 1, replicationRank: 3 });
  });

  it('S == W inside one node (ZeRO-3 on a single machine): flat, singletons', () => {
    const plan = planGroups({ worldSize: 4, ranksPerNode: 8, partitionSize: 4 });
    expect(plan.numNodes).toBe(1);
    expect(plan.partitionGroups).toEqual([[0, 1, 2, 3]]);
    expect(plan.replicationGroups).toEqual([[0], [1], [2], [3]]);
    expect(plan.flatCause).toBe('single-node');
    expect(plan.flatReason).toBe(
      'partitionSize 4 keeps every partition group inside one node (ranksPerNode 8, worldSize 4 fits ' +
        'in one node), so a flat all-gather over the fast intra-node links is used; hierarchical ' +
        'partition sizes for worldSize 4, ranksPerNode 8: none',
    );
  });

  it('S == W over four nodes (ZeRO-3): hierarchical, singleton replication groups', () => {
    const plan = planGroups({ worldSize: 16, ranksPerNode: 4, partitionSize: 16 });
    expect(plan.hierarchical).toBe(true);
    expect(plan.nodesPerPartition).toBe(4);
    expect(plan.replicationGroups).toEqual(seq(0, 16).map((i) => [i]));
    expect(plan.interNodeGroups).toEqual([[0, 4, 8, 12], [1, 5, 9, 13], [2, 6, 10, 14], [3, 7, 11, 15]]);
    expect(plan.forRank(9).replication).toEqual([9]);
  });

  it('S > G, S % G != 0: groups straddle nodes unevenly, flat, names the hierarchical sizes', () => {
    const plan = planGroups({ worldSize: 48, ranksPerNode: 8, partitionSize: 12 });
    expect(plan.partitionGroups).toEqual([seq(0, 12), seq(12, 12), seq(24, 12), seq(36, 12)]);
    expect(plan.hierarchical).toBe(false);
    expect(plan.flatCause).toBe('straddles-nodes');
    expect(plan.flatReason).toBe(
      'partitionSize 12 is not a multiple of ranksPerNode 8, so partition groups straddle nodes ' +
        'unevenly (e.g. ranks 0..11 cover nodes 0..1 partly): flat all-gather; hierarchical ' +
        'partition sizes (multiples of 8 dividing 48): 16, 24, 48; sizes inside one node: 1, 2, 4, 8',
    );
  });

  it('S < G not dividing G: a group crosses a node boundary, flat (straddles-nodes)', () => {
    const plan = planGroups({ worldSize: 24, ranksPerNode: 8, partitionSize: 6 });
    expect(plan.flatCause).toBe('straddles-nodes');
    expect(plan.flatReason).toContain('(e.g. ranks 6..11 cover nodes 0..1 partly)');
    expect(plan.flatReason).toContain('hierarchical partition sizes (multiples of 8 dividing 24): 24');
  });

  it('hierarchical: false turns it off and says so', () => {
    const plan = planGroups({ worldSize: 32, ranksPerNode: 8, partitionSize: 16, hierarchical: false });
    expect(plan.hierarchical).toBe(false);
    expect(plan.flatCause).toBe('disabled');
    expect(plan.flatReason).toBe(
      'hierarchical all-gather turned off (hierarchical: false); the layout would allow it ' +
        '(partitionSize 16 = 2 whole nodes of 8 ranks)',
    );
    expect(plan.intraNodeGroups).toEqual([]);
    expect(plan.interNodeGroups).toEqual([]);
    expect(plan.forRank(3).interNode).toBeUndefined();
  });

  it('hierarchical: false on a layout that could not be hierarchical anyway reports the layout reason', () => {
    const plan = planGroups({ worldSize: 16, ranksPerNode: 8, partitionSize: 4, hierarchical: false });
    expect(plan.flatCause).toBe('single-node');
  });

  it("hierarchical: 'require' gives the hierarchical plan when possible and throws otherwise", () => {
    expect(planGroups({ worldSize: 32, ranksPerNode: 8, partitionSize: 32, hierarchical: 'require' }).hierarchical).toBe(true);
    const e = argumentError(() =>
      planGroups({ worldSize: 48, ranksPerNode: 8, partitionSize: 12, hierarchical: 'require' }),
    );
    expect(e.message).toMatch(/^hierarchical all-gather was required but is not possible: partitionSize 12 is not a multiple/);
    expect(e.message).toContain('16, 24, 48');
  });
});

describe('planGroups: uneven last node (G does not divide W)', () => {
  // W=12, G=8: node 0 holds ranks 0..7, node 1 holds ranks 8..11.
  it('the last node holds fewer ranks', () => {
    const plan = planGroups({ worldSize: 12, ranksPerNode: 8, partitionSize: 4 });
    expect(plan.numNodes).toBe(2);
    expect(plan.forRank(11)).toMatchObject({ node: 1, localRank: 3 });
  });

  it('S dividing both W and G keeps every group inside one node: flat single-node', () => {
    const plan = planGroups({ worldSize: 12, ranksPerNode: 8, partitionSize: 4 });
    expect(plan.partitionGroups).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]);
    expect(plan.flatCause).toBe('single-node');
  });

  it('groups that span nodes are flat, never hierarchical (no S can give whole nodes)', () => {
    for (const s of [3, 6, 12]) {
      const plan = planGroups({ worldSize: 12, ranksPerNode: 8, partitionSize: s });
      expect(plan.hierarchical).toBe(false);
      expect(plan.flatCause).toBe('uneven-nodes');
    }
    expect(planGroups({ worldSize: 12, ranksPerNode: 8, partitionSize: 12 }).flatReason).toBe(
      'worldSize 12 is not a multiple of ranksPerNode 8 (the last node, node 1, holds 4 ranks), so no ' +
        'partition size gives every group whole nodes and partitionSize 12 straddles nodes: flat ' +
        'all-gather; partition sizes that keep every group inside one node: 1, 2, 4',
    );
    expect(hierarchicalPartitionSizes(12, 8)).toEqual([]);
    expect(hierarchicalPartitionSizes(40, 16)).toEqual([]);
  });

  it("'require' on an uneven layout throws with that reason", () => {
    const e = argumentError(() =>
      planGroups({ worldSize: 24, ranksPerNode: 16, partitionSize: 24, hierarchical: 'require' }),
    );
    expect(e.message).toContain('worldSize 24 is not a multiple of ranksPerNode 16 (the last node, node 1, holds 8 ranks)');
  });
});

describe("planGroups: partitionSize 'auto' (one node until a planner exists)", () => {
  it.each([
    // [W, G, S chosen, why]
    [32, 8, 8, 'G divides W: one node'],
    [4, 8, 4, 'W < G: the whole world'],
    [6, 8, 6, 'W < G, even when W does not divide G'],
    [8, 8, 8, 'W == G'],
    [12, 8, 4, 'uneven last node: gcd(W, G), the largest size inside one node'],
    [20, 8, 4, 'uneven last node: gcd(20, 8)'],
    [7, 3, 1, 'uneven, coprime: 1'],
  ])('W=%i G=%i -> S=%i (%s)', (worldSize, ranksPerNode, expected) => {
    const plan = planGroups({ worldSize, ranksPerNode, partitionSize: 'auto' });
    expect(plan.partitionSize).toBe(expected);
    expect(plan.hierarchical).toBe(false);
    expect(plan.flatCause).toBe('single-node');
  });
});

describe('planGroups: invalid arguments throw MICS_INVALID_ARGUMENT naming the value', () => {
  it('partitionSize not dividing worldSize lists the divisors', () => {
    expect(argumentError(() => planGroups({ worldSize: 32, ranksPerNode: 8, partitionSize: 12 })).message).toBe(
      `partitionSize 12 does not divide worldSize 32 (32 ranks cannot form whole replicas of 12); ${DIVISORS_32}`,
    );
  });

  it('partitionSize < 1', () => {
    expect(argumentError(() => planGroups({ worldSize: 32, ranksPerNode: 8, partitionSize: 0 })).message).toBe(
      `partitionSize must be at least 1, got 0; ${DIVISORS_32}`,
    );
    expect(argumentError(() => planGroups({ worldSize: 32, ranksPerNode: 8, partitionSize: -4 })).message).toBe(
      `partitionSize must be at least 1, got -4; ${DIVISORS_32}`,
    );
  });

  it('partitionSize > worldSize', () => {
    expect(argumentError(() => planGroups({ worldSize: 32, ranksPerNode: 8, partitionSize: 64 })).message).toBe(
      `partitionSize 64 is larger than worldSize 32; ${DIVISORS_32}`,
    );
  });

  it('non-integer partitionSize', () => {
    expect(argumentError(() => planGroups({ worldSize: 32, ranksPerNode: 8, partitionSize: 2.5 })).message).toBe(
      `partitionSize must be an integer or 'auto', got 2.5; ${DIVISORS_32}`,
    );
    expect(argumentError(() => planGroups({ worldSize: 32, ranksPerNode: 8, partitionSize: NaN })).message).toBe(
      `partitionSize must be an integer or 'auto', got NaN; ${DIVISORS_32}`,
    );
    expect(argumentError(() => planGroups({ worldSize: 32, ranksPerNode: 8, partitionSize: Infinity })).message).toBe(
      `partitionSize must be an integer or 'auto', got Infinity; ${DIVISORS_32}`,
    );
    // JavaScript callers (and parsed CLI flags) can pass strings: named, not coerced.
    const fromCli = '16' as unknown as number;
    expect(argumentError(() => planGroups({ worldSize: 32, ranksPerNode: 8, partitionSize: fromCli })).message).toBe(
      `partitionSize must be an integer or 'auto', got "16"; ${DIVISORS_32}`,
    );
  });

  it('a prime worldSize has only 1 and itself', () => {
    expect(argumentError(() => planGroups({ worldSize: 7, ranksPerNode: 8, partitionSize: 2 })).message).toBe(
      'partitionSize 2 does not divide worldSize 7 (7 ranks cannot form whole replicas of 2); ' +
        'valid partition sizes for worldSize 7 (divisors of 7): 1, 7',
    );
  });

  it('worldSize not a positive integer', () => {
    expect(argumentError(() => planGroups({ worldSize: 0, ranksPerNode: 8, partitionSize: 1 })).message).toBe(
      'worldSize must be a positive integer, got 0',
    );
    expect(argumentError(() => planGroups({ worldSize: 3.5, ranksPerNode: 8, partitionSize: 1 })).message).toBe(
      'worldSize must be a positive integer, got 3.5',
    );
  });

  it('ranksPerNode not a positive integer', () => {
    expect(argumentError(() => planGroups({ worldSize: 32, ranksPerNode: 0, partitionSize: 8 })).message).toBe(
      'ranksPerNode must be a positive integer (ranks on each node), got 0',
    );
    expect(argumentError(() => planGroups({ worldSize: 32, ranksPerNode: -8, partitionSize: 8 })).message).toBe(
      'ranksPerNode must be a positive integer (ranks on each node), got -8',
    );
    expect(argumentError(() => planGroups({ worldSize: 32, ranksPerNode: 1.5, partitionSize: 8 })).message).toBe(
      'ranksPerNode must be a positive integer (ranks on each node), got 1.5',
    );
  });

  it('hierarchical not a boolean or require', () => {
    const yes = 'yes' as unknown as boolean;
    expect(
      argumentError(() => planGroups({ worldSize: 32, ranksPerNode: 8, partitionSize: 16, hierarchical: yes })).message,
    ).toBe(`hierarchical must be true, false or 'require', got "yes"`);
  });

  it('forRank outside [0, W)', () => {
    const plan = planGroups({ worldSize: 32, ranksPerNode: 8, partitionSize: 16 });
    expect(argumentError(() => plan.forRank(32)).message).toBe('rank must be an integer in [0, 31] for worldSize 32, got 32');
    expect(argumentError(() => plan.forRank(-1)).message).toBe('rank must be an integer in [0, 31] for worldSize 32, got -1');
    expect(argumentError(() => plan.forRank(1.5)).message).toBe('rank must be an integer in [0, 31] for worldSize 32, got 1.5');
  });
});

describe('planGroups: at most MAX_WORLD_SIZE = 2^20 ranks (the lists are W entries each)', () => {
  const TOO_LARGE_WORLD = (w: number): string =>
    `worldSize ${w} is larger than the largest job mics plans, MAX_WORLD_SIZE = 1048576 ranks (2^20): use a positive integer up to 1048576`;

  it('MAX_WORLD_SIZE is 2^20 = 1,048,576 ranks', () => {
    expect(MAX_WORLD_SIZE).toBe(1048576);
  });

  it('refuses a larger world by name, before building any group list (1e9 ranks used to run out of heap)', () => {
    for (const partitionSize of [1, 'auto'] as const) {
      expect(argumentError(() => planGroups({ worldSize: 1e9, ranksPerNode: 1, partitionSize })).message).toBe(TOO_LARGE_WORLD(1e9));
    }
    expect(argumentError(() => planGroups({ worldSize: 2 ** 31, ranksPerNode: 2 ** 31, partitionSize: 2 ** 31 })).message).toBe(
      TOO_LARGE_WORLD(2 ** 31),
    );
    expect(argumentError(() => planGroups({ worldSize: MAX_WORLD_SIZE + 1, ranksPerNode: 8, partitionSize: 1 })).message).toBe(
      TOO_LARGE_WORLD(MAX_WORLD_SIZE + 1),
    );
    // The helpers that take a world check it the same way.
    expect(argumentError(() => singleNodePartitionSizes(2 ** 40, 8)).message).toBe(TOO_LARGE_WORLD(2 ** 40));
    expect(argumentError(() => hierarchicalPartitionSizes(2 ** 40, 8)).message).toBe(TOO_LARGE_WORLD(2 ** 40));
  });

  it('refuses more ranks per node than MAX_WORLD_SIZE, even for a small world', () => {
    expect(argumentError(() => planGroups({ worldSize: 8, ranksPerNode: 2 ** 31, partitionSize: 'auto' })).message).toBe(
      'ranksPerNode 2147483648 is larger than MAX_WORLD_SIZE = 1048576 (2^20), the most ranks a job (or a node) may have: ' +
        'use a positive integer up to 1048576',
    );
    expect(planGroups({ worldSize: 8, ranksPerNode: 2 ** 20, partitionSize: 'auto' }).partitionSize).toBe(8);
  });

  it('plans a world of exactly 2^20 ranks (hierarchical across 2^17 nodes of 8) and refuses one more', () => {
    const plan = planGroups({ worldSize: 2 ** 20, ranksPerNode: 8, partitionSize: 16 });
    expect([plan.numNodes, plan.replicationSize, plan.hierarchical, plan.nodesPerPartition]).toEqual([2 ** 17, 2 ** 16, true, 2]);
    expect(plan.forRank(2 ** 20 - 1).partition).toEqual(seq(2 ** 20 - 16, 16));
    expect(plan.forRank(2 ** 20 - 1).interNode).toEqual([2 ** 20 - 9, 2 ** 20 - 1]);
    expect(argumentError(() => planGroups({ worldSize: 2 ** 20 + 8, ranksPerNode: 8, partitionSize: 16 })).message).toBe(
      TOO_LARGE_WORLD(2 ** 20 + 8),
    );
  });

  it('refuses a plan that is not an object by name (not a TypeError)', () => {
    for (const bad of [undefined, null, 5, 'auto']) {
      expect(argumentError(() => planGroups(bad as unknown as Parameters<typeof planGroups>[0])).message).toMatch(
        /^planGroups: options .* is not valid: use an object \{worldSize, ranksPerNode, partitionSize, hierarchical\?\}$/,
      );
    }
  });

  it('keeps messages short: a world with 240 divisors lists 32 of them and the count', () => {
    expect(divisors(720720)).toHaveLength(240);
    const message = argumentError(() => planGroups({ worldSize: 720720, ranksPerNode: 8, partitionSize: 17 })).message;
    const d = divisors(720720);
    expect(message).toBe(
      'partitionSize 17 does not divide worldSize 720720 (720720 ranks cannot form whole replicas of 17); ' +
        `valid partition sizes for worldSize 720720 (divisors of 720720): ${d.slice(0, 28).join(', ')}, ... (208 more), ` +
        `${d.slice(-4).join(', ')} (240 sizes in all)`,
    );
    expect(message.length).toBeLessThan(400);
    // The flat reason lists sizes the same way.
    const flat = planGroups({ worldSize: 720720, ranksPerNode: 8, partitionSize: 4, hierarchical: false });
    expect(flat.flatReason).toMatch(/hierarchical partition sizes for worldSize 720720, ranksPerNode 8: 16, 24, .*, \.\.\. \(\d+ more\), .*, 720720 \(\d+ sizes in all\)$/);
    expect((flat.flatReason ?? '').length).toBeLessThan(600);
  });

  it('cuts a long string argument in the message', () => {
    const long = 'x'.repeat(1e6) as unknown as number;
    expect(argumentError(() => planGroups({ worldSize: 32, ranksPerNode: 8, partitionSize: long })).message).toBe(
      `partitionSize must be an integer or 'auto', got "${'x'.repeat(64)}"... (1000000 characters); ${DIVISORS_32}`,
    );
  });
});

describe('size helpers', () => {
  it('divisors', () => {
    expect(divisors(1)).toEqual([1]);
    expect(divisors(32)).toEqual([1, 2, 4, 8, 16, 32]);
    expect(divisors(36)).toEqual([1, 2, 3, 4, 6, 9, 12, 18, 36]);
    expect(divisors(97)).toEqual([1, 97]);
    expect(argumentError(() => divisors(0)).message).toBe('divisors: n must be a positive integer, got 0');
  });

  it('hierarchicalPartitionSizes: multiples of G, at least two nodes, dividing W', () => {
    expect(hierarchicalPartitionSizes(32, 8)).toEqual([16, 32]);
    expect(hierarchicalPartitionSizes(48, 8)).toEqual([16, 24, 48]);
    expect(hierarchicalPartitionSizes(8, 8)).toEqual([]);
    expect(hierarchicalPartitionSizes(4, 8)).toEqual([]);
  });

  it('singleNodePartitionSizes', () => {
    expect(singleNodePartitionSizes(32, 8)).toEqual([1, 2, 4, 8]);
    expect(singleNodePartitionSizes(24, 8)).toEqual([1, 2, 4, 8]);
    expect(singleNodePartitionSizes(12, 8)).toEqual([1, 2, 4]);
    expect(singleNodePartitionSizes(6, 8)).toEqual([1, 2, 3, 6]);
  });
});

// ---------------------------------------------------------------------------
// Property sweep

const same = (a: readonly number[] | undefined, b: readonly number[] | undefined): boolean =>
  a !== undefined && b !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
const sorted = (xs: readonly number[]): number[] => [...xs].sort((a, b) => a - b);

/**
 * Every invariant of a plan, computed independently of the implementation. Returns
 * the violations as sentences (empty when the plan is right): plain JS comparisons
 * keep the sweep of ~10^4 plans fast, and one failing sentence names the layout.
 */
function planViolations(plan: GroupPlan): string[] {
  const { worldSize: W, ranksPerNode: G, partitionSize: S } = plan;
  const bad: string[] = [];
  const check = (ok: boolean, what: string): void => {
    if (!ok) bad.push(`W=${W} G=${G} S=${S}: ${what}`);
  };
  const R = W / S;
  const nodeOf = (r: number): number => Math.floor(r / G);
  const nodeSize = (node: number): number => Math.min(G, W - node * G);
  const world = seq(0, W);

  check(plan.replicationSize === R, 'replicationSize is W/S');
  check(plan.numNodes === Math.ceil(W / G), 'numNodes is ceil(W/G)');

  // Partition groups tile the world in contiguous blocks of S.
  check(plan.partitionGroups.length === R, 'R partition groups');
  check(same(plan.partitionGroups.flat(), world), 'partition groups tile the world in order');
  plan.partitionGroups.forEach((grp, p) => check(same(grp, seq(p * S, S)), `partition group ${p} is {${p * S}..}`));

  // Replication groups are the columns: group i holds slice i of every replica.
  check(plan.replicationGroups.length === S, 'S replication groups');
  check(same(sorted(plan.replicationGroups.flat()), world), 'replication groups tile the world');
  plan.replicationGroups.forEach((grp, i) =>
    check(grp.length === R && grp.every((rank, p) => plan.partitionGroups[p][i] === rank), `replication group ${i} is column ${i}`),
  );

  // Hierarchical exactly when every partition group is made of >= 2 whole, full nodes.
  const wholeNodes = plan.partitionGroups.every((grp) => {
    const nodes = new Set(grp.map(nodeOf));
    return nodes.size >= 2 && [...nodes].every((nd) => nodeSize(nd) === G && grp.filter((r) => nodeOf(r) === nd).length === G);
  });
  const insideOneNode = plan.partitionGroups.every((grp) => new Set(grp.map(nodeOf)).size === 1);
  if (plan.hierarchical) {
    check(wholeNodes, 'hierarchical only with whole nodes');
    check(plan.flatCause === undefined && plan.flatReason === undefined, 'no flat reason when hierarchical');
  } else {
    check(typeof plan.flatReason === 'string' && plan.flatReason.length > 0, 'flat plans say why');
    check(plan.intraNodeGroups.length === 0 && plan.interNodeGroups.length === 0, 'flat plans have no sub-groups');
    check(plan.flatCause === 'disabled' ? wholeNodes : !wholeNodes, 'flat only when whole nodes are impossible (or disabled)');
    check((plan.flatCause === 'single-node') === insideOneNode, 'single-node exactly when every group is inside a node');
    check((plan.flatCause === 'uneven-nodes') === (!insideOneNode && W % G !== 0), 'uneven-nodes exactly when spanning an uneven world');
  }

  if (plan.hierarchical) {
    const N = S / G;
    check(plan.nodesPerPartition === N, 'nodesPerPartition is S/G');
    // Intra-node groups: each inside one node, G ranks, tiling the world.
    check(plan.intraNodeGroups.length === R * N, 'R*N intra-node groups');
    check(same(plan.intraNodeGroups.flat(), world), 'intra-node groups tile the world');
    for (const grp of plan.intraNodeGroups) {
      check(grp.length === G && new Set(grp.map(nodeOf)).size === 1, `intra-node group ${grp[0]}.. is one node`);
    }
    // Inter-node groups: one member per node of the partition group, same local index.
    check(plan.interNodeGroups.length === R * G, 'R*G inter-node groups');
    check(same(sorted(plan.interNodeGroups.flat()), world), 'inter-node groups tile the world');
    for (const grp of plan.interNodeGroups) {
      const p = Math.floor(grp[0] / S);
      const partitionNodes = [...new Set(plan.partitionGroups[p].map(nodeOf))];
      check(same(grp.map(nodeOf), partitionNodes), `inter-node group ${grp[0]}.. has one member per node of its partition group`);
      check(new Set(grp.map((r) => r % G)).size === 1, `inter-node group ${grp[0]}.. shares one local index`);
    }
  }

  // forRank agrees with the group lists; every rank is in exactly one group of each kind.
  // owners(groups)[rank] = the groups containing rank (built in one pass, not per rank).
  const owners = (groups: readonly (readonly number[])[]): (readonly number[])[][] => {
    const byRank: (readonly number[])[][] = world.map(() => []);
    for (const grp of groups) for (const r of grp) byRank[r]?.push(grp);
    return byRank;
  };
  const partitionOwners = owners(plan.partitionGroups);
  const replicationOwners = owners(plan.replicationGroups);
  const intraOwners = owners(plan.intraNodeGroups);
  const interOwners = owners(plan.interNodeGroups);
  for (const rank of world) {
    const rg = plan.forRank(rank);
    const at = `forRank(${rank})`;
    check(rg.rank === rank && rg.node === nodeOf(rank) && rg.localRank === rank % G, `${at} rank/node/localRank`);
    const parts = partitionOwners[rank];
    check(parts.length === 1 && parts[0] === rg.partition, `${at} in exactly one partition group, the one it names`);
    check(rg.partition === plan.partitionGroups[rg.partitionIndex] && rg.partition[rg.partitionRank] === rank, `${at} partition index/rank`);
    const reps = replicationOwners[rank];
    check(reps.length === 1 && reps[0] === rg.replication, `${at} in exactly one replication group, the one it names`);
    check(rg.replication === plan.replicationGroups[rg.partitionRank] && rg.replication[rg.replicationRank] === rank, `${at} replication rank`);
    if (plan.hierarchical) {
      const intra = intraOwners[rank];
      const inter = interOwners[rank];
      check(intra.length === 1 && intra[0] === rg.intraNode, `${at} in exactly one intra-node group, the one it names`);
      check(inter.length === 1 && inter[0] === rg.interNode, `${at} in exactly one inter-node group, the one it names`);
      check(rg.intraNode?.[rg.intraNodeRank ?? -1] === rank && rg.intraNodeRank === rg.localRank, `${at} intra-node rank`);
      check(rg.interNode?.[rg.interNodeRank ?? -1] === rank, `${at} inter-node rank`);
      check(rg.partitionRank === (rg.interNodeRank ?? -1) * G + rg.localRank, `${at} partitionRank = j*G + l`);
    } else {
      check(rg.intraNode === undefined && rg.interNode === undefined, `${at} no sub-groups when flat`);
    }
  }
  return bad;
}

/** The MicsError fn throws, or undefined (no expect calls: used inside sweeps). */
function thrown(fn: () => unknown): MicsError | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof MicsError && e.code === 'MICS_INVALID_ARGUMENT') return e;
    throw e;
  }
  return undefined;
}

describe('property sweep: W = 1..64, every G (and some G > W), every divisor S', () => {
  it('all invariants hold for every layout; hierarchy follows the hierarchical option', () => {
    const bad: string[] = [];
    let plans = 0;
    let hierarchicalPlans = 0;
    for (let W = 1; W <= 64; W++) {
      const divs = divisors(W);
      for (let G = 1; G <= W + 3; G++) {
        const hierSizes = hierarchicalPartitionSizes(W, G);
        for (const S of divs) {
          const at = `W=${W} G=${G} S=${S}`;
          const plan = planGroups({ worldSize: W, ranksPerNode: G, partitionSize: S });
          bad.push(...planViolations(plan));
          plans++;
          if (plan.hierarchical) hierarchicalPlans++;

          const off = planGroups({ worldSize: W, ranksPerNode: G, partitionSize: S, hierarchical: false });
          if (off.hierarchical || off.flatCause !== (plan.hierarchical ? 'disabled' : plan.flatCause)) {
            bad.push(`${at}: hierarchical: false gives ${off.flatCause}`);
          }
          const required = thrown(() => planGroups({ worldSize: W, ranksPerNode: G, partitionSize: S, hierarchical: 'require' }));
          if ((required === undefined) !== plan.hierarchical) bad.push(`${at}: 'require' throws iff not hierarchical`);
          if (hierSizes.includes(S) !== plan.hierarchical) bad.push(`${at}: hierarchicalPartitionSizes disagrees`);
        }
      }
      // Every non-divisor in range is refused, listing the divisors (G plays no part in this check).
      for (let S = 1; S <= W; S++) {
        if (W % S === 0) continue;
        const e = thrown(() => planGroups({ worldSize: W, ranksPerNode: 8, partitionSize: S }));
        if (e === undefined || !e.message.includes(`(divisors of ${W}): ${divs.join(', ')}`)) {
          bad.push(`W=${W} S=${S}: not refused with the divisors listed`);
        }
      }
    }
    expect(bad).toEqual([]);
    // The sweep really covers both kinds of plan.
    expect(plans).toBeGreaterThan(10000);
    expect(hierarchicalPlans).toBeGreaterThan(300);
  });
});

// ---------------------------------------------------------------------------
// Hierarchical all-gather layout

describe('hierarchicalSlots: the layout of mics.md', () => {
  it('N=2, G=4, l=1, n=3 by hand', () => {
    expect(hierarchicalSlots(2, 4, 1, 3)).toEqual({
      nodes: 2,
      ranksPerNode: 4,
      localIndex: 1,
      shardLength: 3,
      outputLength: 24,
      stage1Order: [1, 5],
      stagingLength: 6,
      stagingOffsetInOutput: 6,
      rearrange: [
        { from: 0, to: 3, length: 3 },
        { from: 3, to: 15, length: 3 },
      ],
      rearrangeNeedsTemporary: false,
      stage2: [
        { node: 0, inputOffset: 3, outputOffset: 0, outputLength: 12 },
        { node: 1, inputOffset: 15, outputOffset: 12, outputLength: 12 },
      ],
    });
  });

  it('N=4, G=2, l=0, n=1: staging at 0 would be clobbered by piece 1, so a temporary is needed', () => {
    // staging = B[0..4) = partitions 0, 2, 4, 6; piece 1 (partition 2) goes to B[2], where piece 2 still waits.
    const slots = hierarchicalSlots(4, 2, 0, 1);
    expect(slots.stage1Order).toEqual([0, 2, 4, 6]);
    expect(slots.rearrange.map((c) => c.to)).toEqual([0, 2, 4, 6]);
    expect(slots.rearrangeNeedsTemporary).toBe(true);
  });

  it('agrees with the plan: inter-node group = stage-1 order, intra-node group = a stage-2 output', () => {
    const plan = planGroups({ worldSize: 48, ranksPerNode: 4, partitionSize: 24 });
    const N = 6;
    for (let rank = 0; rank < 48; rank++) {
      const rg = plan.forRank(rank);
      const base = rg.partitionIndex * 24;
      const slots = hierarchicalSlots(N, 4, rg.localRank, 5);
      expect(rg.interNode?.map((r) => r - base)).toEqual(slots.stage1Order);
      const j = rg.interNodeRank ?? -1;
      expect(rg.intraNode?.map((r) => r - base)).toEqual(seq(slots.stage2[j].outputOffset / 5, 4));
    }
  });

  it('lays out the largest partition group, N x G = MAX_WORLD_SIZE, in one pass (it used to compare every pair of pieces)', () => {
    // l = G - 1: no target overlaps a later source, so a pairwise check looked at all N^2 / 2 pairs.
    const slots = hierarchicalSlots(2 ** 17, 8, 7, 1); // pairwise: minutes; jest's timeout fails it
    expect(slots.rearrangeNeedsTemporary).toBe(false);
    expect(slots.stage1Order[2 ** 17 - 1]).toBe((2 ** 17 - 1) * 8 + 7);
    // l = 1: copy 18725 writes B[8 x 18725 + 1], where staging piece 18729 (at N + 18729) still waits to be read.
    expect(hierarchicalSlots(2 ** 17, 8, 1, 1).rearrangeNeedsTemporary).toBe(true);
  });

  it('rejects a partition group of more than MAX_WORLD_SIZE ranks', () => {
    expect(argumentError(() => hierarchicalSlots(2 ** 20, 2, 0, 1)).message).toBe(
      'N x G (ranks in the partition group) must be at most MAX_WORLD_SIZE = 1048576, got 1048576 x 2 = 2097152',
    );
  });

  it('rejects bad arguments', () => {
    expect(argumentError(() => hierarchicalSlots(0, 4, 0, 1)).message).toBe('N (nodes per partition group) must be an integer >= 1, got 0');
    expect(argumentError(() => hierarchicalSlots(2, 0, 0, 1)).message).toBe('G (ranks per node) must be an integer >= 1, got 0');
    expect(argumentError(() => hierarchicalSlots(2, 4, 4, 1)).message).toBe('l (local index) must be an integer in [0, 3] for G = 4, got 4');
    expect(argumentError(() => hierarchicalSlots(2, 4, 0, -1)).message).toBe('n (elements per shard) must be an integer >= 0, got -1');
    expect(argumentError(() => hierarchicalSlots(2, 4, 0, 1.5)).message).toBe('n (elements per shard) must be an integer >= 0, got 1.5');
  });
});

/**
 * Simulates the hierarchical all-gather of one partition group of N*G ranks on plain
 * arrays, doing exactly what the multi-process code will do with views, and returns
 * every rank's output buffer B.
 *
 * @param staging 'inside' stages into B at stagingOffsetInOutput (copying through a
 *   temporary only when the layout says so), 'separate' stages into its own array,
 *   'naive-inside' stages inside B and always copies forward in place (to show the flag matters).
 */
function simulate(
  N: number,
  G: number,
  n: number,
  staging: 'inside' | 'separate' | 'naive-inside',
): { output: number[][]; afterRearrange: number[][] } {
  const S = N * G;
  // Distinct values everywhere so any misplaced element shows.
  const shard = (p: number): number[] => seq(0, n).map((e) => p * 1000 + e);
  const B: number[][] = seq(0, S).map(() => new Array<number>(S * n).fill(-1));
  const slots: HierarchicalSlots[] = seq(0, S).map((r) => hierarchicalSlots(N, G, r % G, n));
  const separate: number[][] = seq(0, S).map(() => []);

  // Stage 1: for each local index l, an all-gather among ranks l, G+l, 2G+l, ... (group order).
  for (let l = 0; l < G; l++) {
    const members = seq(0, N).map((j) => j * G + l);
    const gathered = members.flatMap((r) => shard(r)); // r holds partition r
    for (const r of members) {
      const s = slots[r];
      expect(s.stage1Order).toEqual(members); // piece j of staging is partition j*G + l
      expect(gathered.length).toBe(s.stagingLength);
      if (staging === 'separate') separate[r] = gathered.slice();
      else B[r].splice(s.stagingOffsetInOutput, gathered.length, ...gathered);
    }
  }

  // Re-arrange into strided slots.
  for (let r = 0; r < S; r++) {
    const s = slots[r];
    let source: number[];
    let base: number;
    if (staging === 'separate') {
      source = separate[r];
      base = 0;
    } else if (staging === 'inside' && s.rearrangeNeedsTemporary) {
      source = B[r].slice(s.stagingOffsetInOutput, s.stagingOffsetInOutput + s.stagingLength);
      base = 0;
    } else {
      source = B[r]; // forward copy in place
      base = s.stagingOffsetInOutput;
    }
    for (const c of s.rearrange) {
      for (let e = 0; e < c.length; e++) B[r][c.to + e] = source[base + c.from + e];
    }
  }

  const afterRearrange = B.map((b) => b.slice());

  // Stage 2: on each node, N in-place all-gathers among its G ranks.
  for (let node = 0; node < N; node++) {
    const members = seq(0, G).map((l) => node * G + l);
    for (let j = 0; j < N; j++) {
      // Every member's input is read before anyone's output is written (collective semantics).
      const inputs = members.map((r) => {
        const g2 = slots[r].stage2[j];
        expect(g2.node).toBe(j);
        // In place: the input is this rank's own slot in the output range.
        expect(g2.inputOffset).toBe(g2.outputOffset + slots[r].localIndex * n);
        return B[r].slice(g2.inputOffset, g2.inputOffset + n);
      });
      const out = inputs.flat();
      for (const r of members) {
        const g2 = slots[r].stage2[j];
        expect(out.length).toBe(g2.outputLength);
        B[r].splice(g2.outputOffset, out.length, ...out);
      }
    }
  }
  for (let r = 0; r < S; r++) expect(B[r].length).toBe(slots[r].outputLength);
  return { output: B, afterRearrange };
}

describe('hierarchical all-gather simulated on arrays equals the flat all-gather', () => {
  const cases: [number, number, number][] = [
    [2, 4, 3],
    [2, 8, 1],
    [4, 2, 2],
    [3, 3, 5],
    [4, 4, 2],
    [8, 2, 3],
    [2, 2, 7],
    [5, 3, 4],
    [1, 4, 2], // one node: stage 1 is trivial
    [3, 1, 2], // one rank per node: stage 2 is trivial
    [3, 2, 0], // empty shards
  ];

  it.each(cases)('N=%i G=%i n=%i, staging inside B and in a separate buffer', (N, G, n) => {
    const S = N * G;
    const flat = seq(0, S).flatMap((p) => seq(0, n).map((e) => p * 1000 + e));
    for (const mode of ['inside', 'separate'] as const) {
      const out = simulate(N, G, n, mode).output;
      for (let r = 0; r < S; r++) expect(out[r]).toEqual(flat);
    }
  });

  it('rearrangeNeedsTemporary is true exactly when a forward in-place copy would corrupt the result', () => {
    let flagged = 0;
    let unflagged = 0;
    for (let N = 1; N <= 6; N++) {
      for (let G = 1; G <= 6; G++) {
        for (const n of [1, 2, 3]) {
          const S = N * G;
          // Judged per rank right after the re-arrangement: after stage 2 one corrupted
          // rank would spoil the whole node.
          const naive = simulate(N, G, n, 'naive-inside').afterRearrange;
          for (let r = 0; r < S; r++) {
            const slots = hierarchicalSlots(N, G, r % G, n);
            const needs = slots.rearrangeNeedsTemporary;
            const corrupted = slots.stage1Order.some(
              (p) => JSON.stringify(naive[r].slice(p * n, (p + 1) * n)) !== JSON.stringify(seq(0, n).map((e) => p * 1000 + e)),
            );
            expect({ N, G, n, r, corrupted }).toEqual({
              N, G, n, r, corrupted: needs,
            });
            if (needs) flagged++;
            else unflagged++;
          }
        }
      }
    }
    expect(flagged).toBeGreaterThan(0);
    expect(unflagged).toBeGreaterThan(0);
  });
});
