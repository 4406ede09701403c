/** Which backends the loaded addon can use on this machine, and why not. */
import type { Capabilities } from './native';

/** One backend and whether it is usable on this machine, with the reason when not. */
export interface BackendStatus {
  name: 'cpu' | 'nccl';
  usable: boolean;
  detail: string;
}

/** Decides which backends are usable from the probed capabilities. */
export function backendStatuses(caps: Capabilities): BackendStatus[] {
  const cpu: BackendStatus = {
    name: 'cpu',
    usable: caps.cpu.available,
    detail: 'shared memory within a node, TCP between nodes',
  };
  const reasons: string[] = [];
  if (!caps.nccl.found) {
    reasons.push(`${caps.nccl.error ?? 'libnccl.so.2 not found'} (searched: ${caps.nccl.searched.join(', ')})`);
  }
  if (!caps.cuda.compiled) reasons.push(`no CUDA parts: ${caps.cuda.reason ?? 'not compiled'}`);
  else if (caps.cuda.deviceCount === 0) reasons.push(`no CUDA device: ${caps.cuda.reason ?? 'none found'}`);
  const nccl: BackendStatus =
    reasons.length === 0
      ? {
          name: 'nccl',
          usable: true,
          detail: `NCCL ${caps.nccl.version} at ${caps.nccl.path}, ${caps.cuda.deviceCount} CUDA device(s)`,
        }
      : { name: 'nccl', usable: false, detail: reasons.join('; ') };
  return [cpu, nccl];
}

