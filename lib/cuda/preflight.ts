/**
 * The GPU preflight of scripts/gpu-check.sh: what the machine is (GPUs, driver, CUDA,
 * compute mode, glibc), whether the CUDA build of the addon can run there (`ldd`, the
 * driver against the runtime, NCCL), and a verdict that stops the check early with a
 * clear message when it cannot. The parsers are pure (tested on recorded outputs);
 * `runPreflight` runs the commands, each with a timeout.
 *
 * Run it as `node dist/cuda/preflight.js [OUTDIR] [ADDON]`: writes OUTDIR/preflight.md
 * and OUTDIR/preflight.json, prints the summary, exits 0 when the GPU checks can run
 * here and 3 when they cannot (the reasons are the "blockers").
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cudaDriverCheck, cudaVersionText, MINIMUM_DRIVER_BRANCH } from '../core/capabilities';
import { loadAddon, packageRoot, type Capabilities } from '../core/native';

/** The oldest glibc the addon runs on (as built on Debian 12; see CMakeLists.txt). */
export const GLIBC_FLOOR = '2.34';

/** One GPU of `nvidia-smi -q`. */
export interface SmiGpu {
  busId: string;
  name?: string;
  architecture?: string;
  computeMode?: string;
  memoryTotal?: string;
  migMode?: string;
}

/** What `nvidia-smi -q` says. */
export interface SmiReport {
  driverVersion?: string;
  /** The CUDA version the driver supports ("13.0"). */
  cudaVersion?: string;
  gpus: SmiGpu[];
}

function field(line: string): [key: string, value: string] | undefined {
  const m = /^(\s*)([^:]+?)\s*:\s*(.*)$/.exec(line);
  return m ? [m[2].trim(), m[3].trim()] : undefined;
}

/** Parses `nvidia-smi -q`: the driver and CUDA versions and, per GPU, name, compute mode, memory, MIG. */
export function parseNvidiaSmiQuery(text: string): SmiReport {
  const report: SmiReport = { gpus: [] };
  let gpu: SmiGpu | undefined;
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    const gpuHeader = /^GPU\s+([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f])\s*$/.exec(line);
    if (gpuHeader) {
      gpu = { busId: gpuHeader[1] };
      report.gpus.push(gpu);
      section = '';
      continue;
    }
    const kv = field(line);
    const indent = /^\s*/.exec(line)?.[0].length ?? 0;
    if (!kv) {
      // A section title inside a GPU block ("    FB Memory Usage").
      if (gpu && line.trim() !== '' && indent <= 4) section = line.trim();
      continue;
    }
    const [key, value] = kv;
    if (!gpu) {
      if (key === 'Driver Version') report.driverVersion = value;
      else if (key === 'CUDA Version') report.cudaVersion = value;
      continue;
    }
    if (value === '' && indent <= 4) {
      section = key;
      continue;
    }
    if (indent <= 4) section = '';
    if (key === 'Product Name' && indent <= 4) gpu.name = value;
    else if (key === 'Product Architecture' && indent <= 4) gpu.architecture = value;
    else if (key === 'Compute Mode' && indent <= 4) gpu.computeMode = value;
    else if (key === 'Total' && section === 'FB Memory Usage' && gpu.memoryTotal === undefined) gpu.memoryTotal = value;
    else if (key === 'Current' && section === 'MIG Mode') gpu.migMode = value;
  }
  return report;
}

/** The NVIDIA kernel module's version in /proc/driver/nvidia/version ("580.65.06"), or undefined. */
export function parseDriverRelease(text: string): string | undefined {
  const line = text.split('\n').find((l) => l.includes('NVRM version'));
  return line?.split(/\s+/).find((w) => /^\d+(\.\d+)+$/.test(w));
}

/** What `ldd` says about one file. */
export interface LddReport {
  /** Libraries resolved, by soname. */
  libraries: { name: string; path?: string }[];
  /** Libraries not found. */
  missing: string[];
  /** "version `GLIBC_2.34' not found" and the like. */
  versionErrors: string[];
}

/** Parses the output of `ldd FILE` (stdout and stderr together). */
export function parseLdd(text: string): LddReport {
  const report: LddReport = { libraries: [], missing: [], versionErrors: [] };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    const version = /version `([^']+)' not found/.exec(line);
    if (version) {
      report.versionErrors.push(version[1]);
      continue;
    }
    const arrow = /^(\S+)\s+=>\s+(.*?)\s*(\(0x[0-9a-f]+\))?$/.exec(line);
    if (arrow) {
      if (arrow[2] === 'not found') report.missing.push(arrow[1]);
      else report.libraries.push({ name: arrow[1], path: arrow[2] || undefined });
      continue;
    }
    const bare = /^(\S+)\s+\(0x[0-9a-f]+\)$/.exec(line);
    if (bare) report.libraries.push({ name: bare[1] });
  }
  return report;
}

/** The glibc version from `getconf GNU_LIBC_VERSION` ("glibc 2.35") or `ldd --version`'s first line. */
export function parseGlibcVersion(text: string): string | undefined {
  const first = text.split('\n')[0] ?? '';
  const getconf = /^glibc\s+(\d+\.\d+)/.exec(first.trim());
  if (getconf) return getconf[1];
  const ldd = /(\d+\.\d+)\s*$/.exec(first.trim());
  return ldd?.[1];
}

/** -1, 0 or 1 as a < b, a = b, a > b, comparing dotted numbers ("2.34" < "2.35.1"). */
export function compareVersions(a: string, b: string): number {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/** Everything the verdict looks at (gathered by runPreflight, or given by a test). */
export interface PreflightFacts {
  smi?: SmiReport;
  /** Why nvidia-smi gave nothing (not installed, failed). */
  smiError?: string;
  driverRelease?: string;
  glibc?: string;
  ldd?: LddReport;
  /** The addon's capabilities, or why it did not load. */
  capabilities?: Capabilities;
  addonError?: string;
}

/** The verdict: blockers stop the GPU check; notes are worth knowing. */
export interface PreflightVerdict {
  ok: boolean;
  blockers: string[];
  notes: string[];
  /** Whether the multi-rank smoke can run: every GPU's compute mode is Default. */
  sharedGpuOk: boolean;
}

/** Decides whether the CUDA build can run its GPU checks on this machine, and why not. */
export function preflightVerdict(f: PreflightFacts): PreflightVerdict {
  const blockers: string[] = [];
  const notes: string[] = [];
  const gpus = f.smi?.gpus ?? [];
  if (gpus.length === 0) blockers.push(`no GPU: ${f.smiError ?? 'nvidia-smi lists none'}`);
  if (f.glibc && compareVersions(f.glibc, GLIBC_FLOOR) < 0) {
    blockers.push(`glibc ${f.glibc} is older than ${GLIBC_FLOOR}, the oldest the addon is built for`);
  }
  if (f.ldd) {
    if (f.ldd.missing.length > 0) blockers.push(`the addon needs libraries this machine lacks: ${f.ldd.missing.join(', ')}`);
    if (f.ldd.versionErrors.length > 0) blockers.push(`the addon needs symbol versions this machine lacks: ${f.ldd.versionErrors.join(', ')}`);
  }
  const caps = f.capabilities;
  if (!caps) {
    blockers.push(`the addon did not load: ${f.addonError ?? 'unknown reason'}`);
  } else {
    if (!caps.cuda.compiled) blockers.push('the addon loaded is the CPU build (no CUDA parts): build with `npm run build:cmake` or carry build-cmake/Release/mics.node');
    else {
      const driver = cudaDriverCheck({ ...caps.cuda, driverRelease: caps.cuda.driverRelease || f.driverRelease });
      if (driver.status === 'too-old') blockers.push(driver.message);
      else if (driver.status === 'no-driver') blockers.push(driver.message);
      else if (caps.cuda.deviceCount === 0) blockers.push(`CUDA sees no device: ${caps.cuda.reason ?? 'none'}`);
      else notes.push(driver.message);
    }
    if (!caps.nccl.found) {
      const searched = caps.nccl.searched.length > 0 ? `searched: ${caps.nccl.searched.slice(0, 3).join(', ')}${caps.nccl.searched.length > 3 ? ', ...' : ''}; ` : '';
      blockers.push(`NCCL not found: ${caps.nccl.error ?? 'libnccl.so.2 not found'} (${searched}set MICS_NCCL_LIBRARY)`);
    }
    else if ((caps.nccl.versionCode ?? 0) < 21000) blockers.push(`NCCL ${caps.nccl.version} at ${caps.nccl.path} is older than 2.10, the oldest mics runs on`);
    else if (caps.nccl.split === false) notes.push(`NCCL ${caps.nccl.version} has no ncclCommSplit: split() makes groups with fresh unique ids`);
  }
  // Without the addon's view, compare what nvidia-smi says with the runtime this build needs.
  if (!caps && f.smi?.cudaVersion) {
    const [major] = f.smi.cudaVersion.split('.').map(Number);
    if (major < 13) blockers.push(`the driver supports CUDA ${f.smi.cudaVersion}; the CUDA build (CUDA 13) needs NVIDIA ${MINIMUM_DRIVER_BRANCH[13]} or newer`);
  }
  const notDefault = gpus.filter((g) => g.computeMode !== undefined && g.computeMode !== 'Default');
  if (notDefault.length > 0) {
    notes.push(
      `compute mode ${notDefault.map((g) => `${g.computeMode} on ${g.busId}`).join(', ')}: ` +
        'several ranks on one GPU need Default (nvidia-smi -c DEFAULT); the one-GPU multi-rank smoke is skipped',
    );
  }
  if (gpus.some((g) => g.migMode === 'Enabled')) notes.push('MIG is enabled: each rank needs a MIG instance of its own');
  return { ok: blockers.length === 0, blockers, notes, sharedGpuOk: gpus.length > 0 && notDefault.length === 0 };
}

/** Markdown for the report. */
export function formatPreflight(f: PreflightFacts, v: PreflightVerdict): string {
  const lines = ['## Preflight', ''];
  const smi = f.smi;
  lines.push(`- driver: ${smi?.driverVersion ?? f.driverRelease ?? 'unknown'}` + (smi?.cudaVersion ? ` (supports CUDA ${smi.cudaVersion})` : ''));
  for (const g of smi?.gpus ?? []) {
    lines.push(`- GPU ${g.busId}: ${g.name ?? '?'}${g.architecture ? ` (${g.architecture})` : ''}, ${g.memoryTotal ?? '? memory'}, compute mode ${g.computeMode ?? '?'}` + (g.migMode ? `, MIG ${g.migMode}` : ''));
  }
  if (f.smiError) lines.push(`- nvidia-smi: ${f.smiError}`);
  lines.push(`- glibc: ${f.glibc ?? 'unknown'} (the addon needs ${GLIBC_FLOOR} or newer)`);
  if (f.ldd) {
    lines.push(`- ldd: ${f.ldd.libraries.map((l) => l.name).join(', ') || 'nothing'}` +
      (f.ldd.missing.length ? `; MISSING ${f.ldd.missing.join(', ')}` : '') +
      (f.ldd.versionErrors.length ? `; VERSION ERRORS ${f.ldd.versionErrors.join(', ')}` : ''));
  }
  const caps = f.capabilities;
  if (caps) {
    lines.push(`- CUDA runtime (compiled in): ${caps.cuda.runtimeVersion ? cudaVersionText(caps.cuda.runtimeVersion) : 'none'}; driver supports ${caps.cuda.driverVersion ? cudaVersionText(caps.cuda.driverVersion) : 'nothing (no driver)'}; devices: ${caps.cuda.deviceCount}`);
    lines.push(`- NCCL: ${caps.nccl.found ? `${caps.nccl.version} at ${caps.nccl.path} (split: ${String(caps.nccl.split)}, finalize: ${String(caps.nccl.finalize)})` : `not found (${caps.nccl.error ?? ''})`}`);
  } else {
    lines.push(`- addon: did not load: ${f.addonError ?? '?'}`);
  }
  lines.push('', v.ok ? '**Verdict: the GPU checks can run here.**' : '**Verdict: the GPU checks cannot run here:**');
  for (const b of v.blockers) lines.push(`- BLOCKER: ${b}`);
  for (const n of v.notes) lines.push(`- note: ${n}`);
  return `${lines.join('\n')}\n`;
}

function run(command: string, args: string[], timeoutMs = 20000): { ok: boolean; text: string; error?: string } {
  const r = spawnSync(command, args, { encoding: 'utf8', timeout: timeoutMs });
  if (r.error) return { ok: false, text: '', error: `${command}: ${r.error.message}` };
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  return r.status === 0 ? { ok: true, text } : { ok: false, text, error: `${command} ${args.join(' ')} exited ${String(r.status ?? r.signal)}: ${text.trim().split('\n')[0] ?? ''}` };
}

/** Gathers the facts on this machine; `addonFile` is the CUDA build to check with ldd. */
export function gatherFacts(addonFile: string, loadCapabilities: () => Capabilities): PreflightFacts {
  const facts: PreflightFacts = {};
  const smi = run('nvidia-smi', ['-q']);
  if (smi.ok) facts.smi = parseNvidiaSmiQuery(smi.text);
  else facts.smiError = smi.error;
  try {
    facts.driverRelease = parseDriverRelease(fs.readFileSync('/proc/driver/nvidia/version', 'utf8'));
  } catch {
    // no NVIDIA kernel module
  }
  const getconf = run('getconf', ['GNU_LIBC_VERSION']);
  facts.glibc = parseGlibcVersion(getconf.ok ? getconf.text : run('ldd', ['--version']).text);
  if (fs.existsSync(addonFile)) facts.ldd = parseLdd(run('ldd', [addonFile]).text);
  try {
    facts.capabilities = loadCapabilities();
  } catch (e) {
    facts.addonError = e instanceof Error ? e.message : String(e);
  }
  return facts;
}

/** Runs the preflight, writes OUTDIR/preflight.{md,json} and returns the verdict. */
export function runPreflight(outDir: string, addonFile: string, loadCapabilities: () => Capabilities): PreflightVerdict {
  const facts = gatherFacts(addonFile, loadCapabilities);
  const verdict = preflightVerdict(facts);
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'preflight.json'), `${JSON.stringify({ facts, verdict }, null, 2)}\n`);
  fs.writeFileSync(path.join(outDir, 'preflight.md'), formatPreflight(facts, verdict));
  return verdict;
}

if (require.main === module) {
  const outDir = process.argv[2] ?? '.';
  const addonFile = process.argv[3] ?? path.join(packageRoot, 'build-cmake', 'Release', 'mics.node');
  const verdict = runPreflight(outDir, addonFile, () => loadAddon().addon.capabilities());
  process.stdout.write(fs.readFileSync(path.join(outDir, 'preflight.md'), 'utf8'));
  process.exitCode = verdict.ok ? 0 : 3;
}
