/**
 * The summary of a --hostfile start: one for the whole job, the failures of every node, nodes
 * that sent no report, and a lost node or a forwarded signal as the root cause.
 */
import { endExitCode, endOutranks, formatSummary, type EndRecord } from '../../../lib/cli/launch/summary';
import type { WorkerResult } from '../../../lib/cli/launch/supervisor';

const rank = (r: number, node: number, how: Partial<WorkerResult> = {}): WorkerResult => ({
  rank: r,
  localRank: r % 2,
  groupRank: node,
  host: `h${node}`,
  pid: 100 + r,
  exitCode: null,
  signal: 'SIGTERM',
  error: undefined,
  startedAt: 0,
  endedAt: 1000,
  stoppedByLauncher: true,
  ...how,
});

describe('the combined summary', () => {
  it('names a lost node as the root cause, with every node\'s failures and the nodes without a report', () => {
    const end: EndRecord = { kind: 'lost', nodeRank: 2, host: '10.0.0.3', message: 'no heartbeat from its launcher for 15.1 s', time: 0 };
    const text = formatSummary({
      script: 'train.js',
      end,
      local: [rank(0, 0), rank(2, 1)],
      nodeRank: undefined,
      attempts: 1,
      elapsedMs: 20500,
      worldSize: 6,
      nnodes: 3,
      missing: [
        { nodeRank: 2, host: '10.0.0.3', message: 'its ssh session ended (exit code 255) without the agent\'s report' },
      ],
    });
    expect(text).toContain('train.js FAILED (3 node(s), after 1 attempt(s), 20.50 s)');
    expect(text).toMatch(/\[1\]:\n.*\n {2}host {6}: h0\n {2}rank {6}: 0 \(local_rank: 0, node: 0\)/);
    expect(text).toMatch(/\[2\]:\n.*\n {2}host {6}: h1\n {2}rank {6}: 2 \(local_rank: 0, node: 1\)/);
    // The lost node is the root cause; it is not listed again among the failures.
    expect(text.split('Root Cause')[0]).not.toContain('10.0.0.3');
    expect(text.split('Root Cause')[1]).toContain('  host      : 10.0.0.3\n  node      : 2 lost: no heartbeat from its launcher for 15.1 s\n  exitcode  : 1');
    expect(endExitCode(end)).toBe(1);
  });

  it('lists a node without a report among the failures when something else is the root cause', () => {
    const end: EndRecord = { kind: 'interrupted', nodeRank: 0, host: 'login1', signal: 'SIGINT', time: 0, forwarded: true };
    const text = formatSummary({
      script: 't.js',
      end,
      local: [],
      nodeRank: undefined,
      attempts: 1,
      elapsedMs: 1000,
      worldSize: 4,
      nnodes: 2,
      missing: [{ nodeRank: 1, host: 'n1', message: 'its ssh session ended (killed by SIGTERM) without the agent\'s report' }],
    });
    expect(text).toContain('[1]:\n  host      : n1\n  node      : 1: no report (its ssh session ended (killed by SIGTERM) without the agent\'s report)');
    expect(text).toContain('  launcher  : mics-launch --hostfile received SIGINT and forwarded it to every node\n  exitcode  : 130');
  });

  it('success is one line for the job', () => {
    const text = formatSummary({ script: 't.js', end: { kind: 'success' }, local: [], nodeRank: undefined, attempts: 1, elapsedMs: 1234, worldSize: 16, nnodes: 2 });
    expect(text).toBe('mics-launch: t.js finished: 16 rank(s) on 2 node(s), exit code 0, 1.23 s, 1 attempt(s)\n');
  });
});

describe('endOutranks()', () => {
  const lost = (time: number): EndRecord => ({ kind: 'lost', nodeRank: 1, host: 'n1', message: 'm', time });
  const failure = (w: WorkerResult): EndRecord => ({ kind: 'failure', nodeRank: 0, worker: w });
  const victim = failure(rank(0, 0, { exitCode: 1, signal: null, stoppedByLauncher: false, endedAt: 2000, failure: { time: 2000, code: 'MICS_PEER_LOST', message: 'x', rank: 0, peer: 3 } }));
  const cause = failure(rank(1, 0, { exitCode: 3, signal: null, stoppedByLauncher: false, endedAt: 500 }));

  it('a lost node outranks victims; between a lost node and a cause the earlier wins; other records never move', () => {
    expect(endOutranks(lost(1000), victim)).toBe(true);
    expect(endOutranks(victim, lost(1000))).toBe(false);
    expect(endOutranks(lost(1000), cause)).toBe(false);
    expect(endOutranks(lost(100), cause)).toBe(true);
    expect(endOutranks(lost(5), { kind: 'success' })).toBe(false);
    expect(endOutranks({ kind: 'error', nodeRank: 0, host: 'h', message: 'm', time: 0 }, victim)).toBe(false);
  });
});

describe('a job that hung on one rank', () => {
  const timedOut = (r: number, time: number, awaited: number, group = 'world', worldPeer?: number): WorkerResult =>
    rank(r, 0, {
      exitCode: 1,
      signal: null,
      stoppedByLauncher: false,
      endedAt: time + 5,
      failure: { time, code: 'MICS_TIMEOUT', message: `timed out in allReduce #7 waiting for rank ${awaited}`, rank: r, group, peer: awaited, ...(worldPeer === undefined ? {} : { worldPeer }) },
    });
  const summaryOf = (local: WorkerResult[], root: WorkerResult): string =>
    formatSummary({ script: 't.js', end: { kind: 'failure', nodeRank: 0, worker: root }, local, nodeRank: 0, attempts: 1, elapsedMs: 1000, worldSize: 4, nnodes: 1 });

  it('names the rank the timed-out ranks waited for when it recorded no error of its own', () => {
    const root = timedOut(1, 100, 3);
    const text = summaryOf([timedOut(0, 102, 3), root, timedOut(2, 101, 3), rank(3, 0)], root);
    const [failures, cause] = text.split('Root Cause');
    expect(cause).toContain(
      'note      : rank 3 recorded no error and was stopped by the launcher: it never reached this collective (ranks 0, 1, 2 timed out waiting for it); look at what rank 3 was doing',
    );
    expect(failures).toMatch(/rank {6}: 3 [^]*note {6}: stopped by the launcher after the root cause; ranks 0, 1, 2 timed out waiting for it/);
  });

  it('reads the world rank of a sub-group timeout, and says when the awaited rank exited on its own', () => {
    // Rank 0 of group 'partition' is world rank 2 here.
    const root = timedOut(0, 100, 0, 'partition', 2);
    const gone = rank(2, 0, { exitCode: 0, signal: null, stoppedByLauncher: false, endedAt: 50 });
    expect(summaryOf([root, gone], root)).toContain('note      : rank 2 recorded no error and exited with 0: it never reached this collective (rank 0 timed out waiting for it)');
  });

  it('adds nothing when the awaited rank failed with an error of its own (that error explains it)', () => {
    const root = timedOut(0, 100, 3);
    const failed = rank(3, 0, { exitCode: 1, signal: null, stoppedByLauncher: false, endedAt: 200, failure: { time: 150, message: 'out of memory' } });
    const text = summaryOf([root, failed], root);
    expect(text).not.toContain('never reached');
    expect(text).not.toContain('timed out waiting for it');
  });
});
