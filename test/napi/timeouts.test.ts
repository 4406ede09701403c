/**
 * Per-op timeouts at the native edge: any positive number of milliseconds is a
 * deadline, and one too large for the clock (from about 9.2e12 ms; Infinity too)
 * means no deadline. Before, `now + timeoutMs` overflowed the clock's 64-bit
 * nanoseconds: `timeoutMs: 1e13` timed out at once. Zero, negative, NaN and
 * non-numbers are refused at the call.
 */
import { loadAddon, type NativeCommunicator } from '../../lib/core/native';
import { MicsError } from '../../lib/core/errors';

const { addon } = loadAddon();
type Comm = NativeCommunicator;

/** Two ranks of one group, both in this process. */
async function pair(name: string, connectTimeoutMs: number): Promise<[Comm, Comm]> {
  const make = (rank: number): Comm =>
    new addon.Communicator({ backend: 'cpu', rank, size: 2, node: 0, host: '127.0.0.1', name });
  const comms: [Comm, Comm] = [make(0), make(1)];
  const addresses = comms.map((c) => c.address);
  await Promise.all(comms.map((c) => c.connect(addresses, connectTimeoutMs)));
  return comms;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('timeoutMs beyond the clock means no deadline', () => {
  it.each([1e13, 2 ** 63, Number.MAX_VALUE, Infinity])('an allReduce with timeoutMs %p waits for its late peer and completes', async (timeoutMs) => {
    const [a, b] = await pair(`timeout-${String(timeoutMs)}`, timeoutMs);
    try {
      const x = Float32Array.of(1, 2);
      const y = Float32Array.of(10, 20);
      const early = a.collective('allReduce', x, x, 'f32', 'sum', 0, timeoutMs);
      await sleep(200); // rank 0 is waiting for rank 1 meanwhile
      expect(a.pending).toBe(1);
      await Promise.all([early, b.collective('allReduce', y, y, 'f32', 'sum', 0, timeoutMs)]);
      expect([Array.from(x), Array.from(y)]).toEqual([
        [11, 22],
        [11, 22],
      ]);
      // A grouped call takes the same deadline.
      await Promise.all([
        a.group([['allReduce', x, x, 'f32', 'sum', 0]], timeoutMs),
        b.group([['allReduce', y, y, 'f32', 'sum', 0]], timeoutMs),
      ]);
      expect(Array.from(x)).toEqual([22, 44]);
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  it('an ordinary timeout still fires', async () => {
    const [a, b] = await pair('timeout-fires', 10000);
    try {
      const error = await a.collective('barrier', null, null, 'u8', 'sum', 0, 50).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MicsError);
      expect(error).toMatchObject({ code: 'MICS_TIMEOUT', peer: 1 });
    } finally {
      a.destroy();
      b.destroy();
    }
  });
});

describe('invalid timeouts are refused at the call', () => {
  const comm = new addon.Communicator({ backend: 'cpu', rank: 0, size: 1, node: 0, host: '127.0.0.1', name: 'timeouts-invalid' });
  beforeAll(() => comm.connect([comm.address], 10000));
  afterAll(() => comm.destroy());

  it.each([0, -1, -Infinity, Number.NaN, '100', undefined])('timeoutMs %p: MICS_INVALID_ARGUMENT naming it', (timeoutMs) => {
    const calls: [string, () => unknown][] = [
      ['collective', () => comm.collective('barrier', null, null, 'u8', 'sum', 0, timeoutMs as number)],
      ['group', () => comm.group([], timeoutMs as number)],
      ['connect', () => comm.connect([comm.address], timeoutMs as number)],
    ];
    for (const [what, call] of calls) {
      let error: unknown;
      try {
        call();
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(MicsError);
      expect(error).toMatchObject({
        code: 'MICS_INVALID_ARGUMENT',
        message: expect.stringMatching(new RegExp(`^${what}: timeoutMs .* is not valid: use a positive number of milliseconds`)),
      });
    }
  });
});
