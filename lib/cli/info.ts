/** `mics info`: what this installation is and which backends it can use here. */
import { loadAddon, type BuildInfo, type Capabilities } from '../native';
import { packageVersion } from '../version';

/** One backend and whether it is usable on this machine, with the reason when not. */
export interface BackendStatus {
  name: 'cpu' | 'nccl';
  usable: boolean;
  detail: string;
}

/** The whole report, as `mics info --json` prints it. */
export interface InfoReport {
  packageVersion: string;
  addonVersion: string;
  variant: 'cpu' | 'cuda';
  addonFile: string;
  build: BuildInfo;
  node: string;
  platform: string;
  backends: BackendStatus[];
  capabilities: Capabilities;
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

/** Builds the report by loading and probing the addon. */
export function collectInfo(): InfoReport {
  const { addon, variant, file } = loadAddon();
  const capabilities = addon.capabilities();
  return {
    packageVersion,
    addonVersion: addon.version(),
    variant,
    addonFile: file,
    build: addon.buildInfo(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    backends: backendStatuses(capabilities),
    capabilities,
  };
}

/** Human-readable form of the report. */
export function formatInfo(report: InfoReport): string {
  const caps = report.capabilities;
  const lines = [
    `mics ${report.packageVersion} (addon ${report.addonVersion}, ${report.platform}, node ${report.node})`,
    `build: ${report.variant} variant, ${report.build.buildSystem}, ${report.build.compiler}` +
      (report.build.cuda ? `, CUDA ${report.build.cudaVersion}` : ', no CUDA parts'),
    `addon: ${report.addonFile}`,
    'backends:',
    ...report.backends.map((b) => `  ${b.name}: ${b.usable ? 'yes' : 'no'} - ${b.detail}`),
    `nccl library: ${caps.nccl.found ? `${caps.nccl.version} at ${caps.nccl.path}` : 'not found'}`,
    `cuda devices: ${caps.cuda.deviceCount}${caps.cuda.reason ? ` (${caps.cuda.reason})` : ''}`,
  ];
  return lines.join('\n');
}
