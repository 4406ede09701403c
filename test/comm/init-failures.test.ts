/**
 * A rank that dies inside init() is noticed at once, not at the rendezvous timeout: every other
 * rank's init() rejects within seconds with MICS_PEER_LOST naming the dead rank (`peer`), its
 * own rank, group 'world' and op 'init'; a rank that arrives afterwards fails at once too.
 * Both ways of hosting the store: by the launcher (MICS_STORE_HOSTED=1; here the test hosts a
 * real StoreServer, as mics-launch does) and by rank 0. Real processes, killed with SIGKILL
 * while blocked in init() waiting for a rank that has not come yet.
 *
 * Timing uses wide margins: init's timeout is 60 s, so "within 10 s" is detection, not a timeout.
 */
import * as path from 'node:path';
import { StoreClient, StoreServer } from '../../lib/store';
import { describeRanks, freePort, killAllRanks, repoRoot, startRanks, type RankResult, type StartedRanks } from '../helpers/ranks';

afterAll(() => killAllRanks());

const script = path.join(repoRoot, 'test', 'fixtures', 'launch', 'init-rank.js');
/** Where init() puts the world's keys (run id 'default', attempt 0). */
const PREFIX = 'mics/default/0';
const N = 4;
/** The rank that is never started with the others: everybody waits for it inside init(). */
const LATE = 3;

interface InitError {
  code?: string;
  message?: string;
  rank?: number;
  group?: string;
  op?: string;
  peer?: number;
}

/** The ranks except the late one, started; resolves once every one of them published its node key. */
async function startAllButLate(
  env: NodeJS.ProcessEnv,
  port: number,
  token: string,
): Promise<{ run: StartedRanks; store: StoreClient }> {
  const run = await startRanks({ n: N, script, env, port, token, only: [0, 1, 2], timeoutMs: 60000 });
  // The store is reachable once it is up (rank 0 starts it in that mode).
  const store = await StoreClient.connect({ host: '127.0.0.1', port, token, connectTimeoutMs: 20000, timeoutMs: 20000 });
  await store.wait([0, 1, 2].map((r) => `${PREFIX}/node/${r}`), 20000);
  return { run, store };
}

function expectLossNamed(results: RankResult[], dead: number, killedAt: number): void {
  const summary = describeRanks(results);
  for (const r of results.filter((x) => x.rank !== dead)) {
    const where = `rank ${r.rank}:\n${summary}`;
    expect([where, r.json?.error?.code]).toEqual([where, 'MICS_PEER_LOST']);
    const err = r.json.error as InitError;
    expect([where, err.peer, err.rank, err.group, err.op]).toEqual([where, dead, r.rank, 'world', 'init']);
    expect([where, err.message]).toEqual([where, expect.stringMatching(new RegExp(`rank ${dead}( exited or was killed during init\\(\\)|, which hosts the rendezvous store, closed it during init\\(\\): its init\\(\\) failed, or it exited or was killed)`))]);
    expect([where, r.json.settledAt - killedAt < 10000]).toEqual([where, true]);
  }
}

describe('the launcher hosts the store (MICS_STORE_HOSTED=1)', () => {
  let server: StoreServer;
  const token = 'b'.repeat(64);
  beforeEach(async () => {
    server = await StoreServer.start({ host: '127.0.0.1', port: 0, token });
  });
  afterEach(() => server.close());

  it('a rank killed while the others wait for node keys fails their init() within seconds naming it; a rank arriving later fails at once', async () => {
    const env = { MICS_STORE_HOSTED: '1' };
    const { run, store } = await startAllButLate(env, server.port, token);
    try {
      const killedAt = Date.now();
      run.children.get(2)?.kill('SIGKILL');
      const results = await run.done;
      expect(results.find((r) => r.rank === 2)?.signal).toBe('SIGKILL');
      expectLossNamed(results, 2, killedAt);

      const late = await startRanks({ n: N, script, env, port: server.port, token, only: [LATE], timeoutMs: 60000 });
      const [r3] = await late.done;
      const started = Number(/INIT (\d+)/.exec(r3.stdout)?.[1]);
      expectLossNamed([r3], 2, started);
    } finally {
      store.close();
    }
  }, 90000);

  it('a rank killed while the others wait for addresses (past the node keys) is named the same way', async () => {
    const env = { MICS_STORE_HOSTED: '1' };
    const { run, store } = await startAllButLate(env, server.port, token);
    try {
      // Stand in for the late rank's first step, so the others move on to exchanging addresses.
      await store.set(`${PREFIX}/node/${LATE}`, '0');
      await store.wait([0, 1, 2].map((r) => `${PREFIX}/world/addr/${r}`), 20000);
      const killedAt = Date.now();
      run.children.get(1)?.kill('SIGKILL');
      expectLossNamed(await run.done, 1, killedAt);
    } finally {
      store.close();
    }
  }, 90000);
});

describe('rank 0 hosts the store', () => {
  const token = 'c'.repeat(64);

  it('a rank killed during init() fails the init() of the others within seconds naming it', async () => {
    const port = await freePort();
    const { run, store } = await startAllButLate({}, port, token);
    try {
      const killedAt = Date.now();
      run.children.get(1)?.kill('SIGKILL');
      expectLossNamed(await run.done, 1, killedAt);
    } finally {
      store.close();
    }
  }, 90000);

  it('two processes started with the same RANK: one init() fails at once saying so, the job forms with the other', async () => {
    const port = await freePort();
    // The first pair holds its world (and rank 0's store) long enough for the twin to
    // reach the store whether it arrives before or after the world formed.
    const first = await startRanks({ n: 2, script, port, token, only: [0, 1], timeoutMs: 60000, env: { MICS_TEST_HOLD_MS: '8000' } });
    const twin = await startRanks({ n: 2, script, port, token, only: [1], timeoutMs: 60000 });
    const results = [...(await first.done), ...(await twin.done)];
    const summary = describeRanks(results);
    const failed = results.filter((r) => r.json?.error !== undefined);
    expect([summary, failed.map((r) => r.rank)]).toEqual([summary, [1]]);
    expect(failed[0].json.error).toMatchObject({ code: 'MICS_INVALID_ARGUMENT', rank: 1, group: 'world', op: 'init' });
    expect(failed[0].json.error.message).toMatch(/(another connection already registered as rank 1|rank 1 already joined this group) \(two processes started with the same rank\?\)/);
    expect(results.filter((r) => r.json?.ok).map((r) => r.rank).sort()).toEqual([0, 1]);
  }, 90000);

  it('rank 0 killed during init() takes the store with it: the others name rank 0', async () => {
    const port = await freePort();
    const { run, store } = await startAllButLate({}, port, token);
    try {
      const killedAt = Date.now();
      run.children.get(0)?.kill('SIGKILL');
      expectLossNamed(await run.done, 0, killedAt);
    } finally {
      store.close();
    }
  }, 90000);
});
