/** `mics info`: what this installation is and which backends it can use here. */
import { backendStatuses, type BackendStatus } from '../core/capabilities';
import { loadAddon, type BuildInfo, type Capabilities } from '../core/native';
import { packageVersion } from '../core/version';

export { backendStatuses, type BackendStatus } from '../core/capabilities';

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
