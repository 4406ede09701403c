/**
 * mics-launch --one-gpu: every rank maps to CUDA device 0 and gets its own NCCL host id
 * plus the socket-only NCCL settings, so NCCL accepts several ranks on one GPU. The
 * mapping is pure and checked here; the ranks themselves run on a GPU in
 * scripts/gpu-check.sh.
 */
import { workerEnvironment } from '../../../lib/cli/launch/environment';
import { planJob, type NodeRecord } from '../../../lib/cli/launch/layout';
import { ONE_GPU_VARIABLES, oneGpuEnvironment } from '../../../lib/cli/launch/one-gpu';
import { parseLaunchArgs, type LaunchConfig } from '../../../lib/cli/launch/options';
import { requireBuilt, runLaunch, worker } from './harness';

function parse(args: string[], env: NodeJS.ProcessEnv = {}): LaunchConfig {
  const r = parseLaunchArgs(args, env, () => undefined);
  if (r.kind !== 'run') throw new Error('expected a config');
  return r.config;
}

function layoutOf(nproc: number, emulateNodes = 1) {
  const record: NodeRecord = { nodeRank: 0, host: 'h', nproc, emulateNodes, runId: 'r1', nnodes: 1, maxRestarts: 0 };
  return planJob([record], 0);
}

const job = { masterAddr: '127.0.0.1', masterPort: 29500, runId: 'r1', restartCount: 0, maxRestarts: 0, token: 't'.repeat(64) };

describe('oneGpuEnvironment', () => {
  it('maps every rank to one device, each with its own NCCL host id and socket-only transport', () => {
    const envs = [0, 1, 2, 3].map((rank) => oneGpuEnvironment(rank, 0, 'run7'));
    expect(envs[2]).toEqual({
      MICS_CUDA_DEVICE: '0',
      NCCL_HOSTID: 'mics-run7-rank2',
      NCCL_IB_DISABLE: '1',
      NCCL_SOCKET_IFNAME: 'lo',
      NCCL_NVLS_ENABLE: '0',
      NCCL_MULTI_RANK_GPU_ENABLE: '1',
    });
    expect(new Set(envs.map((e) => e.NCCL_HOSTID)).size).toBe(4);
    expect(new Set(envs.map((e) => e.MICS_CUDA_DEVICE))).toEqual(new Set(['0']));
    expect(Object.keys(envs[0])).toEqual(ONE_GPU_VARIABLES);
    expect(oneGpuEnvironment(1, 3, 'x').MICS_CUDA_DEVICE).toBe('3');
  });

  it("keeps the user's transport settings but always sets the device and the host id", () => {
    const base = { NCCL_SOCKET_IFNAME: 'eth0', NCCL_IB_DISABLE: '', NCCL_HOSTID: 'mine', MICS_CUDA_DEVICE: '5' };
    expect(oneGpuEnvironment(1, 0, 'r', base)).toMatchObject({
      NCCL_SOCKET_IFNAME: 'eth0',
      NCCL_IB_DISABLE: '1', // empty counts as unset
      NCCL_HOSTID: 'mics-r-rank1',
      MICS_CUDA_DEVICE: '0',
    });
  });

  it('refuses ranks and devices that are not non-negative integers', () => {
    expect(() => oneGpuEnvironment(-1, 0, 'r')).toThrow(/rank -1/);
    expect(() => oneGpuEnvironment(0, 1.5, 'r')).toThrow(/device 1.5/);
  });
});

describe('--one-gpu', () => {
  it('is off by default and on with the flag or MICS_ONE_GPU=1 (device 0)', () => {
    expect(parse(['t.js']).oneGpu).toBeUndefined();
    expect(parse(['--one-gpu', 't.js']).oneGpu).toBe(0);
    expect(parse(['--one-gpu', '--nproc-per-node', '4', 't.js'])).toMatchObject({ oneGpu: 0, nprocPerNode: 4, script: 't.js' });
    expect(parse(['t.js'], { MICS_ONE_GPU: '1' }).oneGpu).toBe(0);
    expect(parse(['t.js'], { MICS_ONE_GPU: '0' }).oneGpu).toBeUndefined();
    expect(() => parse(['t.js'], { MICS_ONE_GPU: 'yes' })).toThrow("invalid MICS_ONE_GPU 'yes': expected 1 (on) or 0 (off)");
  });

  it('is refused with several nodes', () => {
    expect(() => parse(['--one-gpu', '--nnodes', '2', 't.js'])).toThrow(/--one-gpu runs every rank of a single node on one GPU/);
    expect(() => parse(['--one-gpu', '--hostfile', '/tmp/h', 't.js'])).toThrow(/cannot be combined with --nnodes > 1 or --hostfile/);
  });

  it('adds the variables to every rank environment, emulated nodes included', () => {
    const layout = layoutOf(4, 2);
    const envs = layout.ranks.map((plan) => workerEnvironment({ PATH: '/bin' }, layout, plan, { ...job, oneGpu: 0 }));
    expect(envs.map((e) => [e.RANK, e.MICS_AGENT_LOCAL_RANK, e.MICS_CUDA_DEVICE, e.NCCL_HOSTID])).toEqual([
      ['0', '0', '0', 'mics-r1-rank0'],
      ['1', '1', '0', 'mics-r1-rank1'],
      ['2', '2', '0', 'mics-r1-rank2'],
      ['3', '3', '0', 'mics-r1-rank3'],
    ]);
    const plain = workerEnvironment({ PATH: '/bin' }, layout, layout.ranks[1], job);
    expect(plain.MICS_CUDA_DEVICE).toBeUndefined();
    expect(plain.NCCL_HOSTID).toBeUndefined();
  });

  it('shows them in a dry run', async () => {
    requireBuilt();
    const r = await runLaunch(['--dry-run', '--one-gpu', '--nproc-per-node', '2', '--run-id', 'dry1', worker]);
    expect(r.code).toBe(0);
    const ranks = r.stdout.split('\n').filter((l) => l.startsWith('rank '));
    expect(ranks).toHaveLength(2);
    expect(ranks[1]).toMatch(/MICS_CUDA_DEVICE=0 NCCL_HOSTID=mics-dry1-rank1 NCCL_IB_DISABLE=1 NCCL_SOCKET_IFNAME=lo NCCL_NVLS_ENABLE=0 NCCL_MULTI_RANK_GPU_ENABLE=1/);
  });
});
