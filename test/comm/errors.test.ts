/**
 * One error class: whatever goes wrong in a call of the package, from TypeScript
 * or from the addon, the caller gets a MicsError with a stable code, and an async
 * call reports it as a rejected promise (never a synchronous throw). In-process,
 * on a one-rank world (no store needed).
 */
import * as net from 'node:net';
import * as path from 'node:path';
import { allocHost, allReduce, barrier, createGroups, destroyGroups, init, type Communicator } from '../../lib';
import { commFixtures, killAllRanks, runRanks } from '../helpers/ranks';
import { rejection, thrown } from '../helpers/errors';

afterAll(killAllRanks);

const oneRank = { RANK: '0', WORLD_SIZE: '1' };

describe('init() reads its environment and names what is wrong', () => {
  it.each([['abc'], ['-5'], ['0'], ['Infinity']])('MICS_TIMEOUT_MS=%s rejects naming the variable', async (value) => {
    const err = await rejection(init({ backend: 'cpu', env: { ...oneRank, MICS_TIMEOUT_MS: value } }));
    expect(err.code).toBe('MICS_INVALID_ARGUMENT');
    expect(err.message).toContain(`MICS_TIMEOUT_MS=${value}`);
  });

  it('a bad RANK rejects with a MicsError naming the variable and the valid range', async () => {
    const err = await rejection(init({ backend: 'cpu', env: { RANK: '3', WORLD_SIZE: '2' } }));
    expect(err.code).toBe('MICS_INVALID_ARGUMENT');
    expect(err.message).toMatch(/RANK=3.*\[0, 1\]/);
  });

  it.each([[0], [-1], [NaN], ['5' as unknown as number]])('init({timeoutMs: %p}) rejects naming the value', async (value) => {
    const err = await rejection(init({ backend: 'cpu', timeoutMs: value, env: oneRank }));
    expect(err.code).toBe('MICS_INVALID_ARGUMENT');
    expect(err.message).toContain(`init: timeoutMs ${String(value)} is not valid`);
  });

  it('init({timeoutMs: Infinity}) waits as long as possible (the longest timeout the clocks hold)', async () => {
    const world = await init({ backend: 'cpu', timeoutMs: Infinity, env: oneRank });
    expect(world.timeoutMs).toBe(2 ** 31 - 1);
    world.destroy();
  });

  it('rank 0 cannot host the store on a port in use: MICS_SYSTEM naming the address and what to do', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as net.AddressInfo).port;
    try {
      const env = { RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), MICS_STORE_TOKEN: 'test' };
      const err = await rejection(init({ backend: 'cpu', timeoutMs: 5000, env }));
      expect([err.code, err.rank, err.message]).toEqual([
        'MICS_SYSTEM',
        0,
        expect.stringMatching(new RegExp(`^init: rank 0 hosts the rendezvous store on 127\\.0\\.0\\.1:${port} and cannot: .*EADDRINUSE.*another job or process holds MASTER_PORT`)),
      ]);
    } finally {
      holder.close();
    }
  });

  it('an unknown backend rejects naming it', async () => {
    const err = await rejection(init({ backend: 'gpu' as 'cpu', env: oneRank }));
    expect(err.message).toMatch(/'gpu'/);
  });
});

describe('a one-rank world', () => {
  let world: Communicator;
  beforeEach(async () => {
    world = await init({ backend: 'cpu', env: oneRank });
  });
  afterEach(() => world.destroy());

  it('rejects native argument errors as MicsErrors with the group and code', async () => {
    const err = await rejection(world.allGather(new Float32Array(4), new Float32Array(3)));
    expect(err.code).toBe('MICS_INVALID_ARGUMENT');
    expect(err.message).toMatch(/allGather: output must hold/);
  });

  it('after destroy(), every call rejects with MICS_ABORTED naming the group; none throws', async () => {
    world.destroy();
    const calls: [string, () => Promise<unknown>][] = [
      ['allReduce', () => world.allReduce(new Float32Array(2))],
      ['allGather', () => world.allGather(new Float32Array(2), new Float32Array(2))],
      ['reduceScatter', () => world.reduceScatter(new Float32Array(2), new Float32Array(2))],
      ['broadcast', () => world.broadcast(new Float32Array(2))],
      ['barrier', () => world.barrier()],
      ['split', () => world.split(0)],
      ['subgroup', () => world.subgroup([0])],
    ];
    for (const [name, call] of calls) {
      let promise: Promise<unknown> | undefined;
      expect(() => {
        promise = call();
      }).not.toThrow();
      const err = await rejection(promise!);
      expect([name, err.code, err.group]).toEqual([name, 'MICS_ABORTED', 'world']);
      expect(err.message).toMatch(/destroyed/);
    }
  });

  it.each([[1e13], [Infinity]])('a per-op timeoutMs of %p is no deadline, not an instant one', async (timeoutMs) => {
    const data = Float32Array.of(1, 2);
    await world.allReduce(data, { timeoutMs });
    await world.allGatherGroup([[data, new Float32Array(2)]], { timeoutMs });
    expect(Array.from(data)).toEqual([1, 2]);
  });

  it('options: undefined and null mean the defaults; any other non-object rejects naming it, never a TypeError', async () => {
    const a = Float32Array.of(1, 2);
    const out = new Float32Array(2);
    await world.allGather(a, out, null as never);
    await world.reduceScatter(a, out, null as never);
    await world.allReduce(a, null as never);
    await world.broadcast(a, out, null as never);
    await world.barrier(null as never);
    await world.allGatherGroup([[a, out]], null as never);
    const cases: [string, () => Promise<unknown>][] = [
      ['allReduce', () => world.allReduce(a, 'sum' as never)],
      ['allReduce', () => world.allReduce(a, out, 5 as never)],
      ['allGather', () => world.allGather(a, out, Symbol('o') as never)],
      ['reduceScatter', () => world.reduceScatter(a, out, true as never)],
      ['broadcast', () => world.broadcast(a, 0 as never)],
      ['barrier', () => world.barrier('now' as never)],
      ['allGatherGroup', () => world.allGatherGroup([[a, out]], 1 as never)],
      ['split', () => world.split(0, 0, 'x' as never)],
      ['subgroup', () => world.subgroup([0], 7 as never)],
    ];
    for (const [name, call] of cases) {
      const err = await rejection(call());
      expect([name, err.code, err.message]).toEqual([name, 'MICS_INVALID_ARGUMENT', expect.stringMatching(new RegExp(`^${name}: options .* is not valid: use an object`))]);
    }
  });

  it('allGatherGroup, subgroup and split name malformed arguments', async () => {
    const a = Float32Array.of(1);
    expect((await rejection(world.allGatherGroup(5 as never))).message).toBe('allGatherGroup: 5 is not valid: use an array of [input, output] pairs');
    expect((await rejection(world.allGatherGroup([[a]] as never))).message).toMatch(/^allGatherGroup: pair 0 is .*: use \[input, output\]/);
    expect((await rejection(world.subgroup(null as never))).message).toBe('subgroup: ranks null is not valid: use an array of group ranks');
    expect((await rejection(world.split(0, 0, { name: 5 } as never))).message).toBe('split: name 5 is not valid: use a non-empty string');
  });

  it('package-level collectives reject (never throw) a target or group that is not one, naming it', async () => {
    const groups = await createGroups(world, { partitionSize: 1 });
    const a = Float32Array.of(1);
    await barrier(groups, null as never);
    for (const target of [null, undefined, 5, {}]) {
      let promise: Promise<void> | undefined;
      expect(() => (promise = allReduce(target as never, a))).not.toThrow();
      expect((await rejection(promise!)).message).toMatch(/^target .* is not valid: use a Communicator or the MicsGroups of createGroups\(\)/);
    }
    for (const group of ['__proto__', 'constructor', 'layout', 'mine']) {
      const err = await rejection(barrier(groups, { group } as never));
      expect([group, err.message]).toEqual([group, `option group "${group}" is not valid: use one of world, partition, replication, intraNode, interNode`]);
    }
    destroyGroups(groups);
  });

  it('createGroups, destroyGroups, allocHost and init name what they were given instead', async () => {
    expect((await rejection(createGroups(null as never))).message).toBe('createGroups: world null is not valid: use the Communicator of init()');
    expect((await rejection(createGroups(world, 5 as never))).message).toBe('createGroups: options 5 is not valid: use an object (or leave it out)');
    expect(thrown(() => destroyGroups(null as never)).message).toBe('destroyGroups: null is not valid: use the MicsGroups of createGroups()');
    expect(thrown(() => allocHost('f32', Symbol('n') as never)).message).toMatch(/^allocHost: count Symbol\(n\) is not valid for f32/);
    expect(thrown(() => allocHost(7 as never, 1)).message).toMatch(/^allocHost: dtype '7' is not valid/);
    expect((await rejection(init('cpu' as never))).message).toBe('init: options "cpu" is not valid: use an object (or leave it out)');
  });

  it('values String() cannot convert (no prototype, a throwing toString) are named too, never a TypeError', async () => {
    const bare = Object.create(null) as object;
    const throwing = { toString: (): string => { throw new Error('no'); } };
    for (const value of [bare, throwing]) {
      const shown = '{}'; // both, as JSON (a function-valued key is left out)
      const cases: [string, () => Promise<unknown>, string][] = [
        ['op', () => world.allReduce(Float32Array.of(1), { op: value as never }), `reduction op '${shown}' is not valid`],
        ['timeoutMs', () => world.allReduce(Float32Array.of(1), { timeoutMs: value as never }), `allReduce: timeoutMs ${shown} is not valid`],
        ['root', () => world.broadcast(Float32Array.of(1), { root: value as never }), `broadcast: root ${shown} is not valid`],
        ['dtype', () => world.allReduce({ data: Float32Array.of(1), dtype: value as never }), `dtype '${shown}' is not valid`],
        ['allocHost', () => Promise.resolve().then(() => allocHost(value as never, 1)), `allocHost: dtype '${shown}' is not valid`],
        ['offset', () => world.allReduce({ data: Float32Array.of(1), offset: value as never }), `allReduce input: offset ${shown} is not valid`],
        ['length', () => world.allReduce({ data: Float32Array.of(1), length: value as never }), `allReduce input: length ${shown} is not valid`],
        ['env', () => init({ backend: 'cpu', env: { ...oneRank, MASTER_PORT: value as never } }), `init: env.MASTER_PORT ${shown} is not valid: environment values are strings`],
      ];
      for (const [what, call, message] of cases) {
        const err = await rejection(call());
        expect([what, err.code, err.message]).toEqual([what, 'MICS_INVALID_ARGUMENT', expect.stringContaining(message)]);
      }
    }
  });

  it.each([[0], [-1], [NaN], ['5' as unknown as number]])('a per-op timeoutMs of %p rejects naming the value', async (timeoutMs) => {
    const err = await rejection(world.allReduce(Float32Array.of(1), { timeoutMs }));
    expect(err.code).toBe('MICS_INVALID_ARGUMENT');
    expect(err.message).toContain(`allReduce: timeoutMs ${String(timeoutMs)} is not valid`);
  });
});

describe('huge timeouts mean "as long as possible", on real ranks', () => {
  it.each([
    ['one node (shm)', 1],
    ['2 emulated nodes (tcp)', 2],
  ])('MICS_TIMEOUT_MS=1e13 and per-op timeoutMs of 1e13 and Infinity: the ops complete: %s', async (_name, nodes) => {
    const results = await runRanks({ n: 2, nodes, script: path.join(commFixtures, 'huge-timeout.js'), env: { MICS_TIMEOUT_MS: '1e13' } });
    for (const r of results) {
      expect(r.json).toEqual({ rank: r.rank, a: 3, b: 2, c: 2, timeoutMs: 2 ** 31 - 1 });
    }
  }, 60000);
});
