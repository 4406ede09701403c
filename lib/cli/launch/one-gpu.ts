/**
 * `mics-launch --one-gpu [device]`: every rank of the job on ONE CUDA device, so that
 * multi-rank NCCL (unique-id exchange, non-blocking init with real peers, grouped ops,
 * ncclCommSplit, the hierarchical all-gather, a rank killed mid-op) runs on a machine
 * with a single GPU. For development and tests, not for speed.
 *
 * NCCL refuses two ranks of one host on one GPU ("Duplicate GPU detected", or "Multiple
 * Ranks are using the same GPU" from 2.30): ranks of one host are recognised by their
 * host hash, which NCCL_HOSTID replaces. Giving every rank its own NCCL_HOSTID makes
 * each look like a node of its own, so the ranks talk over sockets: InfiniBand off,
 * the loopback interface, no NVLink SHARP. NCCL 2.30+ also needs
 * NCCL_MULTI_RANK_GPU_ENABLE=1. The GPU's compute mode must be Default (an
 * exclusive-process GPU admits one process).
 */

/** The variables one rank gets under --one-gpu, in the order a dry run shows them. */
export const ONE_GPU_VARIABLES: readonly string[] = [
  'MICS_CUDA_DEVICE',
  'NCCL_HOSTID',
  'NCCL_IB_DISABLE',
  'NCCL_SOCKET_IFNAME',
  'NCCL_NVLS_ENABLE',
  'NCCL_MULTI_RANK_GPU_ENABLE',
];

/**
 * The device and NCCL variables of rank `rank` under --one-gpu: the device every rank
 * uses (MICS_CUDA_DEVICE, read by init()), an NCCL_HOSTID of its own (unique in the
 * run) and the socket-only transport settings. Transport settings the launcher's own
 * environment (`base`) already sets are kept (the user's choice wins); the device and
 * the host id are always set, since they are what makes the mode work.
 */
export function oneGpuEnvironment(rank: number, device: number, runId: string, base: NodeJS.ProcessEnv = {}): Record<string, string> {
  if (!Number.isInteger(rank) || rank < 0) throw new RangeError(`oneGpuEnvironment: rank ${rank} is not a non-negative integer`);
  if (!Number.isInteger(device) || device < 0) throw new RangeError(`oneGpuEnvironment: device ${device} is not a non-negative integer`);
  const keep = (name: string, value: string): string => {
    const given = base[name];
    return given !== undefined && given !== '' ? given : value;
  };
  return {
    MICS_CUDA_DEVICE: String(device),
    NCCL_HOSTID: `mics-${runId}-rank${rank}`,
    NCCL_IB_DISABLE: keep('NCCL_IB_DISABLE', '1'),
    NCCL_SOCKET_IFNAME: keep('NCCL_SOCKET_IFNAME', 'lo'),
    NCCL_NVLS_ENABLE: keep('NCCL_NVLS_ENABLE', '0'),
    NCCL_MULTI_RANK_GPU_ENABLE: keep('NCCL_MULTI_RANK_GPU_ENABLE', '1'),
  };
}
