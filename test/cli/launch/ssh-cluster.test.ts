/**
 * `mics-launch --hostfile` over a real sshd per emulated node (network namespaces): the fast
 * scenarios of scripts/launch-scenarios.js, each with the exit code, root cause and clean stop
 * it must have. Needs root and openssh-server; skipped with the reason otherwise. The full table
 * (sshd session killed, unreachable host, partition) is the script's: docs/launch.md.
 */
import * as path from 'node:path';
import { requireBuilt, repoRoot } from './harness';

interface Scenario {
  name: string;
  fast?: boolean;
}
interface Result {
  outcome: string;
  problems: string[];
  code: number;
  rootCause: string;
  leftPerNode: number[];
}
interface ClusterHandle {
  down(): void;
}
// A plain script shared with the command line (scripts/ is not compiled).
const scenarios = require(path.join(repoRoot, 'scripts', 'launch-scenarios.js')) as {
  unavailable(): string | undefined;
  Cluster: { up(prefix: string, n: number): ClusterHandle };
  SCENARIOS: Scenario[];
  run(cluster: ClusterHandle, opts: object, s: Scenario): Promise<Result>;
};

const why = scenarios.unavailable();
if (why) console.log(`skipped the real-ssh launcher scenarios: ${why}`);
const sshDescribe = why ? describe.skip : describe;

sshDescribe('mics-launch --hostfile over real ssh (2 emulated nodes, an sshd in each)', () => {
  let cluster: ClusterHandle;
  const opts = { grace: 2, heartbeat: 5, limitMs: 30000, cleanLimitMs: 10000 };
  beforeAll(() => {
    requireBuilt();
    cluster = scenarios.Cluster.up(`mics-jest-${process.pid % 100000}`, 2);
  }, 60000);
  afterAll(() => cluster?.down());

  const fast = scenarios.SCENARIOS.filter((s) => s.fast);
  it.each(fast.map((s) => [s.name, s]))(
    '%s: the expected exit code and root cause, every node clean',
    async (_name, s) => {
      const r = await scenarios.run(cluster, opts, s as Scenario);
      expect(r.problems).toEqual([]);
      expect(r.outcome).toBe('as expected');
      expect(r.leftPerNode).toEqual([0, 0]);
    },
    60000,
  );
});
