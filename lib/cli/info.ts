/** `mics info`: what this installation is and which backends it can use here. */
import { backendStatuses, cudaDriverCheck, installationProblems, type BackendStatus, type DriverCheck } from '../core/capabilities';
import { loadAddon, type BuildInfo, type Capabilities } from '../core/native';
import { packageVersion } from '../core/version';

export { backendStatuses, cudaDriverCheck, installationProblems, type BackendStatus } from '../core/capabilities';

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
  /** The NVIDIA driver against this build's CUDA runtime. */
  driver: DriverCheck;
  /** Why this installation cannot do what it was built for (`mics info` then exits 1); empty when fine. */
  problems: string[];
  capabilities: Capabilities;
}

/** MICS_REQUIRE_GPU=1: a missing GPU, driver or NCCL is a problem, not a fallback. */
export function requireGpuFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.MICS_REQUIRE_GPU === '1';
}

/** Builds the report by loading and probing the addon. */
export function collectInfo(requireGpu = requireGpuFromEnv()): InfoReport {
  const { addon, variant, file } = loadAddon();
  const capabilities = addon.capabilities();
  const driver = cudaDriverCheck(capabilities.cuda);
  return {
    packageVersion,
    addonVersion: addon.version(),
    variant,
    addonFile: file,
    build: addon.buildInfo(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    backends: backendStatuses(capabilities),
    driver,
    problems: installationProblems(capabilities, requireGpu),
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
  if (report.build.cuda) lines.push(`cuda driver: ${report.driver.message}`);
  for (const p of report.problems) lines.push(`error: ${p}`);
  return lines.join('\n');
}
