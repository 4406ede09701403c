/**
 * The root cause of an attempt is the first failure in time that is not a consequence of
 * another: ranks that recorded losing a peer, and ranks the launcher stopped, are victims. Across
 * nodes, the end record in the store is replaced by a failure that outranks it, so the earliest
 * root failure wins whichever node published first. The store here is a real one (openStore).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { installFailureRecord, noteFailure, readFailureRecord, type FailureRecord } from '../../../lib/comm/failure-record';
import { MicsError } from '../../../lib/core/errors';
import { closeStore, openStore, publishEnd, settledEnd, type AgentStore } from '../../../lib/cli/launch/rendezvous';
import { causeTier, failureTime, outranks, rootCause } from '../../../lib/cli/launch/root-cause';
import type { EndRecord } from '../../../lib/cli/launch/summary';
import type { WorkerResult } from '../../../lib/cli/launch/supervisor';
import { tempDir } from './harness';

/** A finished rank: `endedAt` is when the launcher saw its exit. */
function exited(rank: number, endedAt: number, how: Partial<WorkerResult> = {}): WorkerResult {
  return {
    rank,
    localRank: rank,
    groupRank: 0,
    host: 'h',
    pid: 1000 + rank,
    exitCode: 1,
    signal: null,
    error: undefined,
    startedAt: 0,
    endedAt,
    stoppedByLauncher: false,
    ...how,
  };
}

const lost = (peer: number, time: number): FailureRecord => ({
  time,
  code: 'MICS_PEER_LOST',
  message: `rank ${peer} closed its connection`,
  rank: 0,
  group: 'world',
  peer,
});

describe('rootCause()', () => {
  it('a killed rank reaped after the peers that lost it is still the root cause', () => {
    const killed = exited(2, 1005, { exitCode: null, signal: 'SIGKILL' });
    const victims = [exited(0, 1001, { failure: { ...lost(2, 1000.5), rank: 0 } }), exited(1, 1002, { failure: { ...lost(2, 1000.7), rank: 1 } })];
    expect(rootCause([...victims, killed])).toBe(killed);
    expect(victims.map(causeTier)).toEqual([1, 1]);
  });

  it('between causes the earliest wins, by the time the rank recorded, else its exit', () => {
    const threw = exited(3, 1010, { failure: { time: 1000, message: 'boom' } });
    const killedLater = exited(1, 1005, { exitCode: null, signal: 'SIGKILL' });
    expect(failureTime(threw)).toBe(1000);
    expect(rootCause([killedLater, threw])).toBe(threw);
  });

  it('a victim that lost a rank of another node is the root cause when it is all there is; stopped ranks come last', () => {
    const stopped = exited(1, 1001, { exitCode: null, signal: 'SIGTERM', stoppedByLauncher: true });
    const victim = exited(0, 1003, { failure: lost(7, 1002) });
    expect(causeTier(stopped)).toBe(2);
    expect(rootCause([stopped, victim])).toBe(victim);
    expect(rootCause([])).toBeUndefined();
  });

  it('MICS_ABORTED counts as a consequence only when it names another rank; a sub-group loss is judged by worldPeer', () => {
    const abortedBySelf = exited(0, 1, { failure: { time: 1, code: 'MICS_ABORTED', message: 'rank 0 aborted', rank: 0, group: 'world', peer: 0 } });
    const abortedOverPeer = exited(0, 1, { failure: { time: 1, code: 'MICS_ABORTED', message: 'aborted earlier', rank: 0, group: 'world', peer: 3 } });
    const subgroup = exited(5, 1, { failure: { time: 1, code: 'MICS_PEER_LOST', message: 'x', rank: 1, group: 'partition', peer: 0, worldPeer: 4 } });
    expect([causeTier(abortedBySelf), causeTier(abortedOverPeer), causeTier(subgroup)]).toEqual([0, 1, 1]);
  });

  it('outranks(): a cause beats a victim whatever the times; else the earlier one', () => {
    const cause = exited(2, 2000);
    const victim = exited(0, 1000, { failure: lost(2, 999) });
    expect([outranks(cause, victim), outranks(victim, cause)]).toEqual([true, false]);
    expect([outranks(exited(1, 10), exited(2, 20)), outranks(exited(2, 20), exited(1, 10))]).toEqual([true, false]);
  });
});

describe('failure records', () => {
  it('the first failure noted is written (time, code, peers); later ones are not', () => {
    const file = path.join(tempDir('record'), 'rank0.json');
    installFailureRecord(file);
    const before = Date.now();
    noteFailure(new MicsError('rank 2 closed its connection\nsecond line', 'MICS_PEER_LOST', { rank: 0, group: 'world', op: 'allReduce #3', peer: 2 }));
    noteFailure(new Error('later'));
    const record = readFailureRecord(file);
    expect(record).toMatchObject({ code: 'MICS_PEER_LOST', message: 'rank 2 closed its connection', rank: 0, group: 'world', op: 'allReduce #3', peer: 2 });
    expect(Math.abs((record?.time ?? 0) - before)).toBeLessThan(1000);
    expect(readFailureRecord(path.join(path.dirname(file), 'none.json'))).toBeUndefined();
    fs.writeFileSync(file, '{"half": ');
    expect(readFailureRecord(file)).toBeUndefined();
    installFailureRecord(undefined);
  });
});

describe('the end record in the store', () => {
  let store: AgentStore;
  beforeEach(async () => {
    store = await openStore({
      nodeRank: 0,
      nnodes: 1,
      runId: 'rc',
      masterAddr: '127.0.0.1',
      masterPort: 0,
      storeHost: '127.0.0.1',
      token: 'd'.repeat(64),
      timeoutMs: 5000,
    });
  });
  afterEach(() => closeStore(store));

  const failure = (nodeRank: number, worker: WorkerResult): EndRecord => ({ kind: 'failure', nodeRank, worker });

  it('a node whose rank lost a peer publishes first; the node of the killed rank replaces it', async () => {
    const victim = failure(0, exited(0, 1002, { failure: lost(3, 1001) }));
    const cause = failure(1, exited(3, 1003, { exitCode: null, signal: 'SIGKILL' }));
    expect(await publishEnd(store, 0, victim)).toEqual(victim);
    expect(await publishEnd(store, 0, cause)).toEqual(cause);
    // A later victim or a later cause does not displace it.
    expect(await publishEnd(store, 0, victim)).toEqual(cause);
    expect(await publishEnd(store, 0, failure(0, exited(1, 5000)))).toEqual(cause);
    // An earlier cause does.
    const earlier = failure(0, exited(2, 900));
    expect(await publishEnd(store, 0, earlier)).toEqual(earlier);
  });

  it('success and interruptions are never replaced; they are first-writer-wins as before', async () => {
    const interrupted: EndRecord = { kind: 'interrupted', nodeRank: 0, host: 'h', signal: 'SIGINT', time: 1 };
    expect(await publishEnd(store, 1, interrupted)).toEqual(interrupted);
    expect(await publishEnd(store, 1, failure(0, exited(2, 900)))).toEqual(interrupted);
  });

  it('a lost node replaces victims (they lost its ranks), not a cause that failed before it was lost', async () => {
    const victim = failure(0, exited(0, 1002, { failure: lost(3, 1001) }));
    const lostNode: EndRecord = { kind: 'lost', nodeRank: 1, host: 'n1', message: 'no heartbeat', time: 1500 };
    expect(await publishEnd(store, 3, victim)).toEqual(victim);
    expect(await publishEnd(store, 3, lostNode)).toEqual(lostNode);
    expect(await publishEnd(store, 3, victim)).toEqual(lostNode);
    const earlierCause = failure(0, exited(2, 900));
    expect(await publishEnd(store, 3, earlierCause)).toEqual(earlierCause);
    expect(await publishEnd(store, 3, lostNode)).toEqual(earlierCause);
  });

  it('settledEnd() waits for another node to replace a victim that lost one of its ranks, and not for a local one', async () => {
    const victim = failure(0, exited(0, 1002, { failure: lost(3, 1001) }));
    await publishEnd(store, 2, victim);
    const t0 = Date.now();
    expect(await settledEnd(store, 2, victim, new Set([0, 3]), 5000)).toEqual(victim);
    expect(Date.now() - t0).toBeLessThan(1000);
    const cause = failure(1, exited(3, 1003, { exitCode: null, signal: 'SIGKILL' }));
    setTimeout(() => void publishEnd(store, 2, cause), 200);
    expect(await settledEnd(store, 2, victim, new Set([0, 1]), 5000)).toEqual(cause);
  });
});
