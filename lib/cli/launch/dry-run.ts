/** --dry-run for a node's agent: what would run, with which environment, token redacted. */
import { shellQuote, workerCommand } from './command';
import { describeWorkerEnvironment, REDACTED, workerEnvironment } from './environment';
import { planJob, type NodeRecord } from './layout';
import type { LaunchConfig } from './options';

/**
 * Describes the agent's plan without starting anything. Other nodes' rank counts are unknown
 * before the rendezvous, so they are assumed equal to this node's (said in the output).
 * The token is never generated or read here: the output shows `<redacted>` in its place.
 */
export function formatLocalDryRun(config: LaunchConfig, nproc: number, env: NodeJS.ProcessEnv, hostname: string, runId: string): string {
  const cmd = workerCommand(config.script, config.scriptArgs, config.runWithNode);
  const records: NodeRecord[] = Array.from({ length: config.nnodes }, (_, nodeRank) => ({
    nodeRank,
    host: nodeRank === config.nodeRank ? hostname : `node${nodeRank}`,
    nproc,
    emulateNodes: config.emulateNodes,
    runId,
    nnodes: config.nnodes,
    maxRestarts: config.maxRestarts,
  }));
  const layout = planJob(records, config.nodeRank);
  const port = config.masterPort === 0 ? '<free port chosen at start>' : String(config.masterPort);
  const lines = [
    'mics-launch dry run: nothing is started.',
    `node ${config.nodeRank} of ${config.nnodes} on ${hostname}: ${nproc} rank(s)` +
      (config.emulateNodes > 1 ? ` in ${config.emulateNodes} emulated nodes of ${nproc / config.emulateNodes}` : '') +
      (config.nnodes > 1 ? ` (other nodes assumed to run ${nproc} each)` : ''),
    `store: ${config.nodeRank === 0 ? `hosted here, listening on ${config.storeHost}:${port}` : `joined at ${config.masterAddr}:${port}`}`,
    `run id: ${runId}; max restarts: ${config.maxRestarts}; grace period: ${config.gracePeriodMs / 1000} s; ` +
      `rendezvous timeout: ${config.rdzvTimeoutMs / 1000} s`,
    `command: ${[cmd.command, ...cmd.args].map(shellQuote).join(' ')}`,
  ];
  for (const plan of layout.ranks) {
    const job = { masterAddr: config.masterAddr, masterPort: config.masterPort, runId, restartCount: 0, maxRestarts: config.maxRestarts, token: REDACTED, oneGpu: config.oneGpu };
    // The placeholder stands in for the token, so the printout is safe by construction.
    const full = workerEnvironment(env, layout, plan, job);
    const vars = describeWorkerEnvironment(env, full).map((v) => (v.startsWith('MASTER_PORT=') ? `MASTER_PORT=${port}` : v));
    lines.push(`rank ${plan.rank}: ${vars.join(' ')}`);
  }
  return `${lines.join('\n')}\n`;
}
