/**
 * createEngine(world, {partitionSize: 'auto'}): the engine picks the smallest
 * partition size whose memory holds its model states and units in flight (the
 * planner's choosePartitionSize), the same on every rank, makes its groups and
 * destroys them with itself. Real rank processes on 2 emulated nodes of 2 ranks.
 *
 * The model (test/fixtures/engine/auto-partition.js): 1,024 fp32 parameters in two
 * units of 512, AdamW: 16 B of states per parameter. Bytes per rank at S = 1:
 * 16,384 + a 2,048 B gradient buffer = 18,432; at S = 2: 8,192 + 2 gathered units
 * (4,096) + 2,048 = 14,336; at S = 4: 10,240. 90% of the memory is usable.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createEngine, createGroups, init, MicsError, type Communicator } from '../../lib';
import { stateBytesPerParameter } from '../../lib/engine/partition';
import { describeRanks, killAllRanks, repoRoot, runRanks, type RankResult } from '../helpers/ranks';

const script = path.join(repoRoot, 'test', 'fixtures', 'engine', 'auto-partition.js');
afterAll(killAllRanks);

async function run(config: object): Promise<RankResult[]> {
  const results = await runRanks({ n: 4, nodes: 2, script, args: [JSON.stringify(config)], timeoutMs: 60000 });
  for (const r of results) {
    if (r.code !== 0 || r.json === undefined) throw new Error(`a rank failed:\n${describeRanks(results)}`);
  }
  return results;
}

describe('stateBytesPerParameter: model-state bytes per parameter as the engine allocates them', () => {
  it('counts the shard, the fp32 master (half precision), the accumulator and the optimizer states', () => {
    expect(stateBytesPerParameter({ optimizer: { type: 'adamw', lr: 1 } })).toBe(16);
    expect(stateBytesPerParameter({ optimizer: { type: 'adamw', lr: 1 }, precision: 'bf16' })).toBe(18);
    expect(stateBytesPerParameter({ optimizer: { type: 'sgd', lr: 1 } })).toBe(8);
    expect(stateBytesPerParameter({ optimizer: { type: 'sgd', lr: 1, momentum: 0.9 }, precision: 'fp16' })).toBe(14);
  });
});

describe("createEngine(world, {partitionSize: 'auto'})", () => {
  it('takes S = 2 (inside a node) when the states fit at 2 and not at 1, trains, and destroys its groups', async () => {
    const results = await run({ memory: 18000 });
    for (const { json } of results) {
      expect(json.error).toBeUndefined();
      expect(json.choice).toMatchObject({ partitionSize: 2, hierarchical: false, requiredBytes: 14336 });
      expect(json.choice.reason).toMatch(/^S = 2: the smallest partition size whose model states fit \(14\.0 KiB of 15\.8 KiB usable, model states 8\.0 KiB\); S = 1 needs 18\.0 KiB > 15\.8 KiB usable, .*; groups stay inside one node$/);
      expect(json).toMatchObject({ partition: 2, replication: 2, hierarchicalGroups: false, modelStates: 8192 });
      expect(json.step).toMatchObject({ stepped: true, step: 1 });
      expect(json.groupsAfterDestroy).toBe('MICS_ABORTED');
    }
  });

  it("plans with the smallest rank's memory, so every rank agrees: S = 4, hierarchical over both nodes", async () => {
    const results = await run({ memory: [18000, 18000, 18000, 13000] });
    for (const { json } of results) {
      expect(json.choice).toMatchObject({ partitionSize: 4, hierarchical: true, requiredBytes: 10240 });
      expect(json).toMatchObject({ partition: 4, replication: 1, hierarchicalGroups: true });
      expect(json.step).toMatchObject({ stepped: true, step: 1 });
    }
  });

  it('uses a number as given (no plan), and hierarchical: false as createGroups does', async () => {
    const results = await run({ partitionSize: 4, hierarchical: false, memory: 1 });
    for (const { json } of results) {
      expect(json.choice).toBeUndefined();
      expect(json).toMatchObject({ partition: 4, hierarchicalGroups: false });
    }
  });

  it('rejects on every rank, naming what S = W would need, when the model fits nowhere', async () => {
    const results = await run({ memory: 5000 });
    for (const { json } of results) {
      expect(json.error.code).toBe('MICS_INVALID_ARGUMENT');
      expect(json.error.message).toMatch(/the model \(1024 parameters, 16 B each\) fits at no partition size on 4 ranks: even S = 4 needs 10\.0 KiB per rank and 4\.4 KiB is usable/);
    }
  });
});

describe('partition options and the groups they are for', () => {
  let world: Communicator;
  beforeAll(async () => {
    world = await init({ backend: 'cpu', env: { RANK: '0', WORLD_SIZE: '1' } });
  });
  afterAll(() => world.destroy());
  const options = { parameters: [{ name: 'w', shape: [8] }], optimizer: { type: 'sgd' as const, lr: 0.1 } };

  it('refuses partitionSize, hierarchical or deviceMemoryBytes beside groups that already fix them', async () => {
    const groups = await createGroups(world, { partitionSize: 1 });
    await expect(createEngine(groups, { ...options, partitionSize: 'auto' })).rejects.toThrow(
      /option partitionSize is for createEngine\(world, options\); these groups already have partition size 1/,
    );
    await expect(createEngine(groups, { ...options, deviceMemoryBytes: 1e9 })).rejects.toThrow(/option deviceMemoryBytes is for createEngine\(world, options\)/);
    // the same S is no contradiction
    const engine = await createEngine(groups, { ...options, partitionSize: 1 });
    engine.destroy();
    await expect(groups.partition.allReduce(new Float32Array(1))).resolves.toBeUndefined();
  });

  it('names a bad deviceMemoryBytes or partitionSize', async () => {
    await expect(createEngine(world, { ...options, deviceMemoryBytes: -1 })).rejects.toThrow(
      /deviceMemoryBytes -1 is not valid: use a positive number of bytes/,
    );
    await expect(createEngine(world, { ...options, partitionSize: 'half' as unknown as 'auto' })).rejects.toThrow(/partitionSize "half" is not valid/);
    const err = await createEngine(world, { ...options, partitionSize: 3 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MicsError);
    expect((err as MicsError).message).toMatch(/partitionSize 3 is larger than worldSize 1/);
  });

  it('plans with the host memory shared by the ranks of the node when not told', async () => {
    const engine = await createEngine(world, options);
    expect(engine.partitionChoice).toMatchObject({ partitionSize: 1, replicationSize: 1 });
    expect(engine.partitionChoice!.usableBytes).toBeCloseTo(os.totalmem() * 0.9, -3);
    engine.destroy();
  });
});

describe("docs/engine.md's partitionSize: 'auto' program", () => {
  it('runs under mics-launch on 4 ranks over 2 emulated nodes and prints the choice the page shows', () => {
    const doc = fs.readFileSync(path.join(repoRoot, 'docs', 'engine.md'), 'utf8');
    const section = doc.slice(doc.indexOf("## Choosing the partition size: `partitionSize: 'auto'`"));
    const program = /```js\n([\s\S]*?)```/.exec(section);
    const shown = /prints \(one line\):\n\n```\n([\s\S]*?)```/.exec(section);
    expect(program).not.toBeNull();
    expect(shown).not.toBeNull();
    const project = fs.mkdtempSync(path.join(os.tmpdir(), 'mics-auto-partition-'));
    try {
      fs.mkdirSync(path.join(project, 'node_modules'));
      fs.symlinkSync(repoRoot, path.join(project, 'node_modules', 'mics'));
      fs.writeFileSync(path.join(project, 'auto.js'), program![1]);
      const launcher = path.join(repoRoot, 'dist', 'cli', 'mics-launch.js');
      const args = [launcher, '--nproc-per-node', '4', '--emulate-nodes', '2', '--master-port', '0', 'auto.js'];
      const r = spawnSync(process.execPath, args, { cwd: project, encoding: 'utf8', timeout: 60000 });
      expect([r.status, r.stderr]).toEqual([0, expect.any(String)]);
      expect(r.stdout).toContain(`[rank 0] ${shown![1].trim().split('\n').join(' ')}\n`);
    } finally {
      fs.rmSync(project, { recursive: true, force: true });
    }
  }, 90000);
});
