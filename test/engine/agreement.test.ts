/**
 * createEngine is collective, and every rank must define the same training: ranks
 * whose parameters, optimizer or accumulation differ, or whose replicas start from
 * different weights, fail on every rank with MICS_MISMATCH naming the ranks, instead
 * of training on silently different models or hanging at different boundaries.
 */
import * as path from 'node:path';
import { describeRanks, killAllRanks, repoRoot, runRanks, type RankResult } from '../helpers/ranks';

const script = path.join(repoRoot, 'test', 'fixtures', 'engine', 'definition.js');
afterAll(killAllRanks);

async function run(config: Record<string, unknown>, n = 2): Promise<RankResult[]> {
  const results = await runRanks({ n, script, args: [JSON.stringify(config)], timeoutMs: 60000 });
  expect([results.every((r) => r.code === 0 && r.json !== undefined), describeRanks(results)]).toEqual([true, expect.any(String)]);
  return results;
}

function expectMismatch(results: RankResult[], message: RegExp): void {
  for (const r of results) {
    expect([r.rank, r.json.code, r.json.message]).toEqual([r.rank, 'MICS_MISMATCH', expect.stringMatching(message)]);
  }
}

describe('every rank must define the same training', () => {
  it('the same definition on every rank: the engine is made', async () => {
    for (const r of await run({ perRank: [{}, {}] })) expect(r.json).toEqual({ rank: r.rank, ok: true });
  }, 90000);

  it.each([
    ['a shape that pads to the same unit size', { parameters: [{ name: 'a.weight', shape: [5, 1], unit: 'a' }, { name: 'b.weight', shape: [3, 2], unit: 'b' }] }],
    ['another parameter name', { parameters: [{ name: 'a.w', shape: [4, 2], unit: 'a' }, { name: 'b.weight', shape: [3, 2], unit: 'b' }] }],
    ['another learning rate', { optimizer: { type: 'sgd', lr: 0.2 } }],
    ['other accumulation steps', { accumulationSteps: 2 }],
    ['another precision', { precision: 'bf16' }],
  ])('%s on one rank: MICS_MISMATCH on both, naming the ranks', async (_name, other) => {
    expectMismatch(await run({ perRank: [{}, other] }), /^the ranks define different models or training options \(world ranks \[0\] vs \[1\]\)/);
  }, 90000);

  it('replicas that start from different weights (another seed): MICS_MISMATCH on both, naming the slice and ranks', async () => {
    expectMismatch(await run({ perRank: [{}, { init: { seed: 2 } }] }), /^the replicas of the parameters differ \(slice 0: world ranks \[0\] vs \[1\] hold different values\)/);
  }, 90000);
});

describe('a rank that stops taking part', () => {
  it('the others\' step fails once, at the first collective\'s timeout, not once per unit still queued', async () => {
    const timeoutMs = 3000;
    const units = 6;
    const results = await runRanks({
      n: 4,
      nodes: 2,
      script: path.join(repoRoot, 'test', 'fixtures', 'engine', 'idle-rank.js'),
      args: [JSON.stringify({ timeoutMs, units, idleMs: 4 * timeoutMs })],
      timeoutMs: 120000,
    });
    expect([results.every((r) => r.code === 0 && r.json !== undefined), describeRanks(results)]).toEqual([true, expect.any(String)]);
    expect(results[1].json).toEqual({ rank: 1, idle: true });
    for (const r of results.filter((x) => x.rank !== 1)) {
      expect([r.rank, r.json.code]).toEqual([r.rank, expect.stringMatching(/^MICS_(TIMEOUT|ABORTED|PEER_LOST|STORE_CLOSED)$/)]);
      // One timeout (and the abort it spreads), with room for a loaded machine; queued units used to wait one each.
      expect([r.rank, r.json.ms < 2.5 * timeoutMs]).toEqual([r.rank, true]);
    }
  }, 150000);
});
