/** Every store operation, over real TCP on localhost, as the ranks use them. */
import { StoreClient, StoreServer } from '../../lib/store';
import { rejection } from '../helpers/errors';

const TOKEN = 'operations-test-token';

let server: StoreServer;
const clients: StoreClient[] = [];

async function connect(options: { timeoutMs?: number } = {}): Promise<StoreClient> {
  const client = await StoreClient.connect({ host: server.host, port: server.port, token: TOKEN, ...options });
  clients.push(client);
  return client;
}

/** Tracks whether a promise has settled, without awaiting it. */
function track<T>(promise: Promise<T>): { settled: () => boolean; promise: Promise<T> } {
  let done = false;
  const p = promise.finally(() => {
    done = true;
  });
  return { settled: () => done, promise: p };
}


beforeEach(async () => {
  server = await StoreServer.start({ host: '127.0.0.1', port: 0, token: TOKEN });
});

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await server.close();
});

describe('basic operations', () => {
  it('binds a free port when asked for port 0', () => {
    expect(server.host).toBe('127.0.0.1');
    expect(server.port).toBeGreaterThan(0);
  });

  it('set then get returns the bytes, strings as UTF-8', async () => {
    const c = await connect();
    await c.set('text', 'héllo');
    await c.set('bytes', new Uint8Array([0, 1, 2, 255]));
    expect((await c.get('text')).toString('utf8')).toBe('héllo');
    expect([...(await c.get('bytes'))]).toEqual([0, 1, 2, 255]);
  });

  it('honours the view of a Uint8Array (offset and length), not its whole buffer', async () => {
    const c = await connect();
    const backing = new Uint8Array([9, 9, 1, 2, 3, 9]);
    await c.set('view', backing.subarray(2, 5));
    expect([...(await c.get('view'))]).toEqual([1, 2, 3]);
  });

  it('stores empty values and large values', async () => {
    const c = await connect();
    await c.set('empty', '');
    expect((await c.get('empty')).length).toBe(0);
    const big = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4093) big[i] = i % 251;
    await c.set('big', big);
    expect((await c.get('big')).equals(big)).toBe(true);
  });

  it('set overwrites', async () => {
    const c = await connect();
    await c.set('k', 'one');
    await c.set('k', 'two');
    expect((await c.get('k')).toString()).toBe('two');
  });

  it('multiSet and multiGet keep order', async () => {
    const c = await connect();
    await c.multiSet([
      ['a', '1'],
      ['b', new Uint8Array([2])],
      ['c', '3'],
    ]);
    const values = await c.multiGet(['c', 'a', 'b']);
    expect(values.map((v) => [...v])).toEqual([[0x33], [0x31], [2]]);
    expect(await c.multiGet([])).toEqual([]);
  });

  it('check says whether all keys exist, without waiting', async () => {
    const c = await connect();
    await c.set('x', '1');
    expect(await c.check(['x'])).toBe(true);
    expect(await c.check(['x', 'y'])).toBe(false);
    expect(await c.check([])).toBe(true);
  });

  it('delete says whether the key existed and removes it', async () => {
    const c = await connect();
    await c.set('gone', '1');
    expect(await c.delete('gone')).toBe(true);
    expect(await c.delete('gone')).toBe(false);
    expect(await c.check(['gone'])).toBe(false);
  });

  it('numKeys counts the keys', async () => {
    const c = await connect();
    expect(await c.numKeys()).toBe(0);
    await c.multiSet([
      ['a', '1'],
      ['b', '2'],
    ]);
    await c.add('n', 1);
    expect(await c.numKeys()).toBe(3);
    await c.delete('a');
    expect(await c.numKeys()).toBe(2);
  });

  it('wait resolves once every key exists', async () => {
    const c = await connect();
    const waiting = track(c.wait(['p', 'q']));
    await c.set('p', '1');
    // A later request on the same connection is answered after the set was applied.
    expect(await c.check(['p'])).toBe(true);
    expect(waiting.settled()).toBe(false);
    await c.set('q', '2');
    await waiting.promise;
  });
});

describe('add', () => {
  it('counts from 0, returns the new value, stores decimal text', async () => {
    const c = await connect();
    expect(await c.add('n', 3)).toBe(3);
    expect(await c.add('n', -5)).toBe(-2);
    expect(await c.add('n', 0)).toBe(-2);
    expect((await c.get('n')).toString()).toBe('-2');
  });

  it('continues from a decimal value set by set()', async () => {
    const c = await connect();
    await c.set('n', '41');
    expect(await c.add('n', 1)).toBe(42);
  });

  it('refuses a key that holds something other than an integer', async () => {
    const c = await connect();
    await c.set('n', 'not a number');
    const err = await rejection(c.add('n', 1));
    expect(err.code).toBe('MICS_INVALID_ARGUMENT');
    expect(err.message).toContain('"n"');
    expect(err.message).toContain('not a decimal integer');
    // The failure touched only that request.
    expect((await c.get('n')).toString()).toBe('not a number');
  });

  it('refuses a result beyond the safe integers', async () => {
    const c = await connect();
    await c.add('n', Number.MAX_SAFE_INTEGER);
    const err = await rejection(c.add('n', 1));
    expect(err.code).toBe('MICS_INVALID_ARGUMENT');
    expect(await c.add('n', -1)).toBe(Number.MAX_SAFE_INTEGER - 1);
  });

  it('is atomic under 20 concurrent clients', async () => {
    const perClient = 25;
    const all = await Promise.all(Array.from({ length: 20 }, () => connect()));
    const results = await Promise.all(
      all.map((c) => Promise.all(Array.from({ length: perClient }, () => c.add('counter', 1)))),
    );
    const seen = results.flat().sort((a, b) => a - b);
    // Every add saw a distinct value: no two read-modify-writes interleaved.
    expect(seen).toEqual(Array.from({ length: 20 * perClient }, (_, i) => i + 1));
    expect((await all[0].get('counter')).toString()).toBe(String(20 * perClient));
  });
});

describe('compareSet', () => {
  it('creates a missing key when expected is empty', async () => {
    const c = await connect();
    expect((await c.compareSet('k', '', 'first')).toString()).toBe('first');
    expect((await c.get('k')).toString()).toBe('first');
  });

  it('leaves a missing key missing when expected is not empty, and returns empty', async () => {
    const c = await connect();
    expect((await c.compareSet('k', 'something', 'new')).length).toBe(0);
    expect(await c.check(['k'])).toBe(false);
  });

  it('swaps when the current value equals expected', async () => {
    const c = await connect();
    await c.set('k', 'old');
    expect((await c.compareSet('k', 'old', 'new')).toString()).toBe('new');
    expect((await c.get('k')).toString()).toBe('new');
  });

  it('returns the current value and changes nothing when it differs', async () => {
    const c = await connect();
    await c.set('k', 'current');
    expect((await c.compareSet('k', 'stale', 'new')).toString()).toBe('current');
    expect((await c.compareSet('k', '', 'new')).toString()).toBe('current');
    expect((await c.get('k')).toString()).toBe('current');
  });

  it('elects exactly one winner among racing clients', async () => {
    const all = await Promise.all(Array.from({ length: 10 }, () => connect()));
    const results = await Promise.all(all.map((c, i) => c.compareSet('leader', '', `rank${i}`)));
    const winner = results[0].toString();
    expect(results.every((r) => r.toString() === winner)).toBe(true);
    expect((await all[0].get('leader')).toString()).toBe(winner);
  });

  it('wakes a get waiting for the key it creates', async () => {
    const [a, b] = await Promise.all([connect(), connect()]);
    const pending = a.get('k');
    await b.compareSet('k', '', 'v');
    expect((await pending).toString()).toBe('v');
  });
});

describe('blocking reads', () => {
  it('a get is released by a later set from another client', async () => {
    const [reader, writer] = await Promise.all([connect(), connect()]);
    const pending = track(reader.get('late'));
    // The server handles one connection's frames in order: once this check is answered,
    // the get before it is registered as a waiter (and the key is still absent).
    expect(await reader.check(['late'])).toBe(false);
    expect(pending.settled()).toBe(false);
    await writer.set('late', 'now');
    expect((await pending.promise).toString()).toBe('now');
  });

  it('a blocked get does not block other requests on the same connection', async () => {
    const c = await connect();
    const first = track(c.get('x'));
    const second = track(c.get('y'));
    await c.set('other', '1');
    expect((await c.get('other')).toString()).toBe('1');
    expect(await c.add('n', 1)).toBe(1);
    expect(await c.check(['x'])).toBe(false);
    expect(first.settled()).toBe(false);
    // Answered in the order the keys arrive, not the order asked.
    await c.set('y', 'Y');
    expect((await second.promise).toString()).toBe('Y');
    expect(first.settled()).toBe(false);
    await c.set('x', 'X');
    expect((await first.promise).toString()).toBe('X');
  });

  it('many requests in flight on one connection each get their own reply', async () => {
    const c = await connect();
    const n = 200;
    const gets = Array.from({ length: n }, (_, i) => c.get(`key${i}`));
    await Promise.all(Array.from({ length: n }, (_, i) => c.set(`key${n - 1 - i}`, `value${n - 1 - i}`)));
    const values = await Promise.all(gets);
    expect(values.map((v) => v.toString())).toEqual(Array.from({ length: n }, (_, i) => `value${i}`));
  });

  it('multiGet waits for all keys and returns them together', async () => {
    const [a, b] = await Promise.all([connect(), connect()]);
    const pending = track(a.multiGet(['m1', 'm2']));
    await b.set('m1', '1');
    expect(await b.check(['m1'])).toBe(true);
    expect(pending.settled()).toBe(false);
    await b.set('m2', '2');
    expect((await pending.promise).map(String)).toEqual(['1', '2']);
  });

  it('a waiter whose key was deleted again keeps waiting', async () => {
    const c = await connect();
    const pending = track(c.wait(['a', 'b']));
    await c.set('a', '1');
    await c.delete('a');
    await c.set('b', '2');
    expect(await c.check(['b'])).toBe(true);
    expect(pending.settled()).toBe(false);
    await c.set('a', '1');
    await pending.promise;
  });
});

describe('timeouts', () => {
  it('get rejects with MICS_TIMEOUT naming the key and the store', async () => {
    const c = await connect();
    const started = Date.now();
    const err = await rejection(c.get('missing/key', 150));
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(err.code).toBe('MICS_TIMEOUT');
    expect(err.message).toContain('"missing/key"');
    expect(err.message).toContain(`127.0.0.1:${server.port}`);
    expect(err.message).toContain('150 ms');
  });

  it('wait names only the keys still missing', async () => {
    const c = await connect();
    await c.set('here', '1');
    const err = await rejection(c.wait(['here', 'absent'], 100));
    expect(err.code).toBe('MICS_TIMEOUT');
    expect(err.message).toMatch(/waiting for key "absent"/);
  });

  it('multiGet times out too', async () => {
    const c = await connect();
    const err = await rejection(c.multiGet(['a', 'b'], 50));
    expect(err.code).toBe('MICS_TIMEOUT');
    expect(err.message).toContain('"a", "b"');
  });

  it('uses the client timeoutMs as the default', async () => {
    const c = await connect({ timeoutMs: 100 });
    const err = await rejection(c.get('never'));
    expect(err.code).toBe('MICS_TIMEOUT');
    expect(err.message).toContain('100 ms');
  });

  it('timeout 0 answers present keys and fails missing ones at once', async () => {
    const c = await connect();
    await c.set('present', 'yes');
    expect((await c.get('present', 0)).toString()).toBe('yes');
    expect((await rejection(c.get('absent', 0))).code).toBe('MICS_TIMEOUT');
  });

  it('a timed-out get leaves the connection and the key usable', async () => {
    const c = await connect();
    await rejection(c.get('k', 50));
    await c.set('k', 'v');
    expect((await c.get('k', 1000)).toString()).toBe('v');
  });
});

describe('prefixes', () => {
  it('isolate keys of different groups', async () => {
    const c = await connect();
    const g0 = c.withPrefix('group0');
    const g1 = c.withPrefix('group1');
    await g0.set('nccl_id', 'zero');
    await g1.set('nccl_id', 'one');
    expect((await g0.get('nccl_id')).toString()).toBe('zero');
    expect((await g1.get('nccl_id')).toString()).toBe('one');
    expect(await g0.check(['other'])).toBe(false);
    expect((await c.get('group0/nccl_id')).toString()).toBe('zero');
    expect(await c.check(['nccl_id'])).toBe(false);
  });

  it('nest, joining with "/"', async () => {
    const c = await connect();
    const inner = c.withPrefix('a').withPrefix('b');
    await inner.set('k', 'v');
    expect(await c.check(['a/b/k'])).toBe(true);
    expect(await c.withPrefix('a').check(['b/k'])).toBe(true);
  });

  it('apply to every operation', async () => {
    const c = await connect();
    const g = c.withPrefix('g');
    await g.multiSet([
      ['a', '1'],
      ['b', '2'],
    ]);
    expect((await g.multiGet(['a', 'b'])).map(String)).toEqual(['1', '2']);
    expect(await g.add('n', 2)).toBe(2);
    expect((await g.compareSet('n', '2', '3')).toString()).toBe('3');
    await g.wait(['a', 'b', 'n']);
    expect(await c.check(['g/a', 'g/b', 'g/n'])).toBe(true);
    expect(await g.delete('a')).toBe(true);
    expect(await c.check(['g/a'])).toBe(false);
  });

  it('numKeys of a view counts only its own keys', async () => {
    const c = await connect();
    await c.set('top', '1');
    await c.withPrefix('g').set('a', '1');
    await c.withPrefix('g').withPrefix('h').set('b', '1');
    await c.set('gx/c', '1'); // shares the letters, not the prefix
    expect(await c.withPrefix('g').numKeys()).toBe(2);
    expect(await c.withPrefix('g').withPrefix('h').numKeys()).toBe(1);
    expect(await c.numKeys()).toBe(4);
  });

  it('share the connection: closing a view closes the client', async () => {
    const c = await connect();
    const view = c.withPrefix('v');
    view.close();
    expect((await rejection(c.set('k', '1'))).code).toBe('MICS_STORE_CLOSED');
  });
});

describe('bad input', () => {
  const cases: [string, (c: StoreClient) => Promise<unknown>, RegExp][] = [
    ['empty key', (c) => c.set('', 'v'), /set: key must be a non-empty string, got an empty string/],
    ['non-string key', (c) => c.get(42 as unknown as string), /get: key must be a non-empty string, got 42 \(number\)/],
    ['missing key', (c) => c.delete(undefined as unknown as string), /delete: key must be a non-empty string, got undefined/],
    ['negative timeout', (c) => c.get('k', -1), /get\("k"\): timeoutMs must be a number of milliseconds in 0\.\.2147483647, got -1/],
    ['NaN timeout', (c) => c.wait(['k'], NaN), /timeoutMs .* got NaN/],
    ['NaN delta', (c) => c.add('n', NaN), /add\("n"\): delta must be a safe integer, got NaN/],
    ['fractional delta', (c) => c.add('n', 1.5), /delta must be a safe integer, got 1\.5/],
    ['string delta', (c) => c.add('n', '1' as unknown as number), /delta must be a safe integer, got "1"/],
    ['keys not an array', (c) => c.check('k' as unknown as string[]), /check: keys must be an array of non-empty strings, got "k"/],
    ['empty key in a list', (c) => c.multiGet(['a', '']), /multiGet: keys\[1\]: key must be a non-empty string/],
    ['bad value', (c) => c.set('k', 5 as unknown as string), /value must be a string or a Uint8Array \(Buffer\), got 5 \(number\)/],
    ['bad multiSet entry', (c) => c.multiSet([['k']] as unknown as [string, string][]), /entries\[0\] must be a \[key, value\] pair/],
    ['bad compareSet expected', (c) => c.compareSet('k', null as unknown as string, 'x'), /expected must be a string or a Uint8Array/],
  ];

  it.each(cases)('%s rejects with MICS_INVALID_ARGUMENT and says what is valid', async (_name, call, message) => {
    const c = await connect();
    const err = await rejection(call(c));
    expect(err.code).toBe('MICS_INVALID_ARGUMENT');
    expect(err.message).toMatch(message);
    // Nothing was sent: the connection still works.
    await c.set('ok', '1');
  });

  it('withPrefix refuses an empty prefix', async () => {
    const c = await connect();
    expect(() => c.withPrefix('')).toThrow(/withPrefix: prefix must be a non-empty string, got an empty string/);
  });

  it('a value over the server maxFrameBytes fails that request only', async () => {
    const small = await StoreServer.start({ host: '127.0.0.1', port: 0, token: TOKEN, maxFrameBytes: 4096 });
    const c = await StoreClient.connect({ host: small.host, port: small.port, token: TOKEN });
    try {
      const err = await rejection(c.set('big', Buffer.alloc(5000)));
      expect(err.code).toBe('MICS_INVALID_ARGUMENT');
      expect(err.message).toMatch(/set\("big"\): the request is \d+ bytes, over the store's maxFrameBytes \(4096\)/);
      await c.set('small', Buffer.alloc(1000));
      expect((await c.get('small')).length).toBe(1000);
    } finally {
      c.close();
      await small.close();
    }
  });

  it('a multiGet reply over maxFrameBytes fails that request only', async () => {
    const small = await StoreServer.start({ host: '127.0.0.1', port: 0, token: TOKEN, maxFrameBytes: 4096 });
    const c = await StoreClient.connect({ host: small.host, port: small.port, token: TOKEN });
    try {
      await c.set('a', Buffer.alloc(3000));
      await c.set('b', Buffer.alloc(3000));
      const err = await rejection(c.multiGet(['a', 'b']));
      expect(err.code).toBe('MICS_INVALID_ARGUMENT');
      expect(err.message).toMatch(/exceeds maxFrameBytes \(4096\)/);
      expect((await c.get('a')).length).toBe(3000);
    } finally {
      c.close();
      await small.close();
    }
  });

  it('StoreServer.start validates its options', async () => {
    const bad: [object, RegExp][] = [
      [{ host: '', port: 0, token: 't' }, /host must be a non-empty string/],
      [{ host: '127.0.0.1', port: 70000, token: 't' }, /port must be an integer in 0\.\.65535.*got 70000/],
      [{ host: '127.0.0.1', port: 0, token: '' }, /token must be a non-empty string/],
      [{ host: '127.0.0.1', port: 0, token: 't', maxFrameBytes: 10 }, /maxFrameBytes must be an integer in 1024\.\./],
      [{ host: '127.0.0.1', port: 0, token: 't', authTimeoutMs: -5 }, /authTimeoutMs must be a positive number/],
    ];
    for (const [options, message] of bad) {
      const err = await rejection(StoreServer.start(options as Parameters<typeof StoreServer.start>[0]));
      expect(err.code).toBe('MICS_INVALID_ARGUMENT');
      expect(err.message).toMatch(message);
    }
  });

  it('StoreClient.connect validates its options', async () => {
    const bad: [object, RegExp][] = [
      [{ host: '127.0.0.1', port: 0, token: 't' }, /port must be an integer in 1\.\.65535, got 0/],
      [{ host: 7, port: 1, token: 't' }, /host must be a non-empty string, got 7 \(number\)/],
      [{ host: '127.0.0.1', port: 1, token: '' }, /token must be a non-empty string/],
      [{ host: '127.0.0.1', port: 1, token: 't', timeoutMs: -1 }, /timeoutMs must be a number of milliseconds/],
      [{ host: '127.0.0.1', port: 1, token: 't', connectTimeoutMs: 0 }, /connectTimeoutMs must be positive/],
    ];
    for (const [options, message] of bad) {
      const err = await rejection(StoreClient.connect(options as Parameters<typeof StoreClient.connect>[0]));
      expect(err.code).toBe('MICS_INVALID_ARGUMENT');
      expect(err.message).toMatch(message);
    }
  });

  it('a server started on a port in use says which', async () => {
    let err: unknown;
    try {
      await StoreServer.start({ host: '127.0.0.1', port: server.port, token: TOKEN });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(Error);
    expect((err as NodeJS.ErrnoException).code).toBe('EADDRINUSE');
    expect((err as Error).message).toContain(`127.0.0.1:${server.port}`);
  });
});
