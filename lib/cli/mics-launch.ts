#!/usr/bin/env node
/**
 * `mics-launch`: the torchrun-compatible launcher. Starts one process per rank, hosts the
 * rendezvous store on node 0, exports the torchrun variables and the store token, supervises
 * the group (restarts, signal forwarding, no process left behind) and prints a summary.
 * Guide: docs/launch.md. The pieces live in ./launch.
 */
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import { defaultRunId, runAgent, type AgentIo } from './launch/agent';
import { resolveNproc } from './launch/devices';
import { formatLocalDryRun } from './launch/dry-run';
import { UsageError } from './launch/errors';
import { readHostfile, selectHosts, type SelectedHost } from './launch/hostfile';
import { encodeReport, Lifeline } from './launch/lifeline';
import { parseLaunchArgs, type LaunchConfig } from './launch/options';
import { formatSshDryRun, planSshLaunch, runSshJob } from './launch/ssh';

/** Host names that mean "this machine" in a hostfile. */
function isThisMachine(host: string): boolean {
  return host === 'localhost' || host === '127.0.0.1' || host === '::1' || host === os.hostname();
}

/** Hostfile start: over ssh, or locally when the selection is this machine alone (as DeepSpeed does). */
async function runFromHostfile(config: LaunchConfig, io: AgentIo): Promise<number> {
  const path = config.hostfile as string;
  const hosts: SelectedHost[] = selectHosts(readHostfile(path), config.hostSelection);
  if (hosts.length === 1 && isThisMachine(hosts[0].host)) {
    const h = hosts[0];
    const env = { ...io.env };
    if (!h.slots.every((s, i) => s === i)) env.CUDA_VISIBLE_DEVICES = h.slots.join(',');
    const local: LaunchConfig = { ...config, hostfile: undefined, nnodes: 1, nodeRank: 0, nprocPerNode: h.slots.length };
    return runLocal(local, { ...io, env });
  }
  if (config.masterPort === 0) {
    throw new UsageError('--hostfile needs a fixed --master-port (every node must know it); --standalone and port 0 are for one node');
  }
  // Every agent gets the same explicit run id, so they can check they belong together.
  const runId = config.runId ?? `mics-${randomBytes(4).toString('hex')}`;
  const launches = planSshLaunch(config, hosts, runId, io.env);
  if (config.dryRun) {
    io.stdout(formatSshDryRun(launches));
    return 0;
  }
  return runSshJob(config, launches, io);
}

/** One node's agent (or a dry run of it). */
async function runLocal(config: LaunchConfig, io: AgentIo): Promise<number> {
  const nproc = resolveNproc(config.nprocPerNode);
  if (nproc % config.emulateNodes !== 0) {
    throw new UsageError(
      `--emulate-nodes ${config.emulateNodes} must divide the ${nproc} rank(s) of --nproc-per-node ${String(config.nprocPerNode)}`,
    );
  }
  if (config.dryRun) {
    io.stdout(formatLocalDryRun(config, nproc, io.env, io.hostname, config.runId ?? defaultRunId(config.nnodes)));
    return 0;
  }
  return runAgent(config, nproc, io);
}

/**
 * A node's agent started by a --hostfile starter: takes the carried environment from standard
 * input, follows the starter's messages there, and ends with a report on standard output
 * instead of a summary (the starter prints one for the whole job), errors included.
 */
async function runLifelineAgent(config: LaunchConfig, io: AgentIo): Promise<number> {
  // The ssh session may be gone before this process is: writes to it must not kill it.
  process.stdout.on('error', () => undefined);
  process.stderr.on('error', () => undefined);
  const lifeline = new Lifeline(process.stdin, config.heartbeatTimeoutMs);
  const carried = await lifeline.environment();
  if (carried === undefined) {
    io.stderr(`mics-launch: node ${config.nodeRank}: the starter went away before it sent the environment\n`);
    return 1;
  }
  const report = (r: Parameters<typeof encodeReport>[0]): void => void process.stdout.write(encodeReport(r));
  const agentIo: AgentIo = { ...io, env: { ...io.env, ...carried }, lifeline, report };
  try {
    return await runLocal(config, agentIo);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    io.stderr(`mics-launch: error: ${message}\n`);
    const end = { kind: 'error' as const, nodeRank: config.nodeRank, host: io.hostname, message, time: Date.now() };
    report({ nodeRank: config.nodeRank, host: io.hostname, end, local: [], attempts: 1, worldSize: 0, code: 1 });
    return err instanceof Error && 'exitCode' in err && typeof err.exitCode === 'number' ? err.exitCode : 1;
  } finally {
    lifeline.close();
  }
}

/**
 * Runs the launcher with `args` (without node and the script path) and returns its exit code:
 * the root cause's code when a rank failed, 2 for usage errors, 1 for launch errors.
 */
export async function main(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const parsed = parseLaunchArgs(args, env);
  if (parsed.kind === 'exit') return parsed.code;
  const io: AgentIo = {
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
    env,
    hostname: os.hostname(),
  };
  if (parsed.config.stdinLifeline && !parsed.config.dryRun) return runLifelineAgent(parsed.config, io);
  return parsed.config.hostfile !== undefined ? runFromHostfile(parsed.config, io) : runLocal(parsed.config, io);
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      const code = err instanceof Error && 'exitCode' in err && typeof err.exitCode === 'number' ? err.exitCode : 1;
      const known = err instanceof Error && (err.name === 'UsageError' || err.name === 'LaunchError');
      process.stderr.write(`mics-launch: error: ${message}\n${known ? '' : `${err instanceof Error ? err.stack : ''}\n`}`);
      if (err instanceof UsageError) process.stderr.write("run 'mics-launch --help' for the options\n");
      process.exit(code);
    },
  );
}
