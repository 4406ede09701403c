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
