/**
 * An op that completes on the calling thread (a small op with nothing queued)
 * returns the communicator's one already-resolved Promise, `settled`, instead of
 * a Promise of its own; an op that leaves the thread returns its own, which
 * settles when the op does. The JS layer tells the two apart to skip its error
 * annotation for the first.
 */
import { loadAddon, type NativeCommunicator } from '../../lib/core/native';

const { addon } = loadAddon();

async function group(size: number, name: string): Promise<NativeCommunicator[]> {
  const comms: NativeCommunicator[] = Array.from(
    { length: size },
    (_, rank) => new addon.Communicator({ backend: 'cpu', rank, size, node: 0, host: '127.0.0.1', name }),
  );
  const addresses = comms.map((c) => c.address);
  await Promise.all(comms.map((c) => c.connect(addresses, 10000)));
  return comms;
}

describe('settled: the Promise of ops completed on the calling thread', () => {
  it('is what every small op on one rank returns, and it is resolved', async () => {
    const [comm] = await group(1, 'settled-one');
    try {
      const x = Float32Array.of(1, 2);
      const y = new Float32Array(2);
      const first = comm.collective('allReduce', x, y, 'f32', 'sum', 0, 10000);
      expect(Array.from(y)).toEqual([1, 2]); // done before the call returned
      const second = comm.collective('broadcast', x, y, 'f32', 'sum', 0, 10000);
      expect(first).toBe(comm.settled);
      expect(second).toBe(comm.settled);
      await expect(first).resolves.toBeUndefined();
    } finally {
      comm.destroy();
    }
  });

  it('is not what an op waiting for its peers returns: that one settles with the op', async () => {
    const [a, b] = await group(2, 'settled-two');
    try {
      const x = Float32Array.of(1, 2);
      const y = Float32Array.of(10, 20);
      // b has not called: a's op leaves the thread after its short wait.
      const early = a.collective('allReduce', x, x, 'f32', 'sum', 0, 10000);
      expect(early).not.toBe(a.settled);
      expect(a.pending).toBe(1);
      await Promise.all([early, b.collective('allReduce', y, y, 'f32', 'sum', 0, 10000)]);
      expect([Array.from(x), Array.from(y)]).toEqual([
        [11, 22],
        [11, 22],
      ]);
    } finally {
      a.destroy();
      b.destroy();
    }
  });
});
