/**
 * Liveness of a multi-node job's agents through a real store: a node whose store connection
 * closes without leaving is named at once; a node that leaves properly is not; a node whose
 * heartbeats stop is named after the heartbeat timeout; a node that loses the store says so.
 */
import { closeStore, openStore, type AgentStore } from '../../../lib/cli/launch/rendezvous';
import { Liveness } from '../../../lib/cli/launch/liveness';

const token = 'e'.repeat(64);

async function node(nodeRank: number, port: number): Promise<AgentStore> {
  return openStore({ nodeRank, nnodes: 3, runId: 'live', masterAddr: '127.0.0.1', masterPort: port, storeHost: '127.0.0.1', token, timeoutMs: 5000 });
}

function until(predicate: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const poll = (): void => {
      if (predicate()) resolve();
      else if (Date.now() > deadline) reject(new Error('timed out'));
      else setTimeout(poll, 10);
    };
    poll();
  });
}

describe('Liveness', () => {
  let s0: AgentStore;
  let lost: [number, string][];
  let watch: Liveness;
  beforeEach(async () => {
    s0 = await node(0, 0);
    lost = [];
    watch = await Liveness.start({
      store: s0,
      nodeRank: 0,
      nnodes: 3,
      timeoutMs: 600,
      onNodeLost: (k, m) => lost.push([k, m]),
      onStoreLost: () => undefined,
    });
  });
  afterEach(async () => {
    await watch.stop();
    await closeStore(s0);
  });

  const start = (store: AgentStore, nodeRank: number, onStoreLost: (m: string) => void = () => undefined): Promise<Liveness> =>
    Liveness.start({ store, nodeRank, nnodes: 3, timeoutMs: 600, onNodeLost: () => undefined, onStoreLost });

  it('names a node whose connection closed without leaving at once; one that stopped properly never', async () => {
    const s1 = await node(1, s0.port);
    const s2 = await node(2, s0.port);
    const l1 = await start(s1, 1);
    const l2 = await start(s2, 2);
    await l2.stop();
    await s2.keys.set('left/2', '1'); // what leave() does
    s2.root.close();
    const t0 = Date.now();
    s1.root.close(); // as if node 1's launcher died: no unregister
    await until(() => lost.length > 0, 2000);
    expect(Date.now() - t0).toBeLessThan(300);
    expect(lost[0][0]).toBe(1);
    expect(lost[0][1]).toMatch(/connection to the store closed before it finished/);
    expect(watch.isLost(1)).toBe(true);
    // Node 2 left properly: after the heartbeat timeout it is still not lost.
    await new Promise((r) => setTimeout(r, 1000));
    expect(lost.map(([k]) => k)).toEqual([1]);
    await l1.stop();
  });

  it('names a node whose heartbeats stopped (its connection still open) after the heartbeat timeout', async () => {
    const s2 = await node(2, s0.port);
    const l2 = await start(s2, 2);
    await new Promise((r) => setTimeout(r, 300));
    // A hung host: its timers stop, its socket stays open.
    (l2 as unknown as { timer: NodeJS.Timeout }).timer.unref();
    clearInterval((l2 as unknown as { timer: NodeJS.Timeout }).timer);
    const t0 = Date.now();
    await until(() => lost.length > 0, 3000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
    expect(lost[0][0]).toBe(2);
    expect(lost[0][1]).toMatch(/^no heartbeat from its launcher for \d\.\d s \(network partition, or the host hung\)$/);
    await l2.stop();
    s2.root.close();
  });

  it('a node that loses the store says so', async () => {
    const s1 = await node(1, s0.port);
    const messages: string[] = [];
    const l1 = await start(s1, 1, (m) => messages.push(m));
    await closeStore(s0); // node 0 and its store are gone
    await until(() => messages.length > 0, 3000);
    expect(messages[0]).toMatch(/^lost the connection to the store at 127\.0\.0\.1:\d+|^no reply from the store/);
    await l1.stop();
    s1.root.close();
  });
});
