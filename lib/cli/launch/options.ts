/**
 * The launcher's command line: option definitions (commander), defaults from MICS_* variables
 * and Slurm, and validation with messages that name the bad value and what is valid.
 * Precedence: command line > MICS_* environment > Slurm > built-in defaults.
 */
import { Command, CommanderError, Option } from 'commander';
import { UsageError } from './errors';
import type { NprocSpec } from './devices';
import { slurmLayout, type SlurmLayout } from './slurm';
import type { HostSelection } from './hostfile';
import { packageVersion } from '../../core/version';
import { OPTION_ENV } from './option-env';
import { parseEnvPatterns } from './remote-env';

/** Which of a rank's streams go to files: 0 none, 1 stdout, 2 stderr, 3 both (torchrun's Std). */
export type StdStreams = 0 | 1 | 2 | 3;

/** A --redirects / --tee value: one setting for all ranks, or per local rank (`0:3,1:2`). */
export interface StdSpec {
  /** Setting for every local rank not named in byLocalRank. */
  readonly all: StdStreams;
  /** Per local rank overrides. */
  readonly byLocalRank: ReadonlyMap<number, StdStreams>;
}

/** The setting of a {@link StdSpec} for one local rank. */
export function streamsFor(spec: StdSpec, localRank: number): StdStreams {
  return spec.byLocalRank.get(localRank) ?? spec.all;
}

/** Everything the launcher was asked to do, validated; node count and rank already merged with Slurm. */
export interface LaunchConfig {
  /** The script (or executable with runWithNode false) and its arguments. */
  readonly script: string;
  readonly scriptArgs: readonly string[];
  /** Ranks this launcher runs, before auto/gpu/cpu are resolved. */
  readonly nprocPerNode: NprocSpec;
  readonly nnodes: number;
  readonly nodeRank: number;
  /** Address of node 0, where the store is; exported as MASTER_ADDR. */
  readonly masterAddr: string;
  /** Port of the store; 0 = a free port (only with one node). */
  readonly masterPort: number;
  /** Address the store listens on (node 0 only); defaults to masterAddr, never all interfaces unless asked. */
  readonly storeHost: string;
  readonly standalone: boolean;
  readonly maxRestarts: number;
  /** How often the agent checks the other nodes' state (local exits are seen at once). */
  readonly monitorIntervalMs: number;
  /** Time between SIGTERM (or the forwarded signal) and SIGKILL. */
  readonly gracePeriodMs: number;
  /** How long the rendezvous waits for every node. */
  readonly rdzvTimeoutMs: number;
  /**
   * Silence after which a node's launcher, the store, or the hostfile starter counts as lost
   * (heartbeats every fifth of it; ssh keepalives derived from it).
   */
  readonly heartbeatTimeoutMs: number;
  /** Run id from the command line, environment or Slurm; undefined = generate one (single node). */
  readonly runId: string | undefined;
  readonly logDir: string | undefined;
  readonly redirects: StdSpec;
  readonly tee: StdSpec;
  /** --redirects / --tee as given (forwarded to remote agents), undefined when not given. */
  readonly redirectsText: string | undefined;
  readonly teeText: string | undefined;
  /** Whether the master address / store host were given (else a hostfile start uses its first host). */
  readonly masterAddrGiven: boolean;
  readonly storeHostGiven: boolean;
  readonly dryRun: boolean;
  /** false with --no-node: run the script as an executable. */
  readonly runWithNode: boolean;
  /** Emulated nodes this launcher splits its ranks into (1 = none). */
  readonly emulateNodes: number;
  /** --one-gpu: the CUDA device every rank uses (0: NCCL ranks sharing one GPU, see one-gpu.ts); undefined = off. */
  readonly oneGpu: number | undefined;
  /** Multi-node start from a hostfile over ssh (the launcher is then only the starter). */
  readonly hostfile: string | undefined;
  readonly hostSelection: HostSelection;
  /** The ssh command (program and leading arguments) used to start remote agents. */
  readonly ssh: readonly string[];
  /** Hostfile starts: only variables matching these are carried to the nodes (undefined: all but the denied). */
  readonly envAllow: readonly string[] | undefined;
  /** Hostfile starts: variables never carried to the nodes (besides the built-in list). */
  readonly envDeny: readonly string[];
  /** Hostfile starts: the env file given (--env-file / MICS_ENV_FILE), else the default files are looked for. */
  readonly envFile: string | undefined;
  /** Internal (set by the ssh starter): standard input closing means the starter is gone. */
  readonly stdinLifeline: boolean;
  /** Set when the node layout came from Slurm. */
  readonly slurm: SlurmLayout | undefined;
}

export { OPTION_ENV } from './option-env';

/** Raw option values as commander hands them over (strings, or undefined when not given). */
export interface RawOptions {
  nprocPerNode?: string;
  nnodes?: string;
  nodeRank?: string;
  masterAddr?: string;
  masterPort?: string;
  storeHost?: string;
  standalone?: boolean;
  maxRestarts?: string;
  monitorInterval?: string;
  gracePeriod?: string;
  rdzvTimeout?: string;
  heartbeatTimeout?: string;
  runId?: string;
  logDir?: string;
  redirects?: string;
  tee?: string;
  dryRun?: boolean;
  node: boolean;
  emulateNodes?: string;
  oneGpu?: boolean;
  hostfile?: string;
  include?: string;
  exclude?: string;
  numNodes?: string;
  numGpus?: string;
  ssh?: string;
  envAllow?: string;
  envDeny?: string;
  envFile?: string;
  slurm: boolean;
  stdinLifeline?: boolean;
  rdzvId?: string;
  rdzvEndpoint?: string;
  python?: boolean;
}

/** Builds the commander program (without running it); exported so help text is testable. */
export function buildLaunchProgram(): Command {
  const program = new Command('mics-launch')
    .description(
      'Start, wire and supervise the ranks of a job on one node or many (torchrun-compatible).\n' +
        'Each option also reads a MICS_* environment variable (e.g. MICS_NNODES); see docs/launch.md.',
    )
    .usage('[options] <script.js|script.ts|executable> [args...]')
    .version(packageVersion, '-V, --version', 'print the mics version')
    .argument('<script>', 'the training script (.js, .mjs, .cjs, .ts, .mts, .cts) or, with --no-node, an executable')
    .argument('[args...]', 'arguments passed to the script')
    .passThroughOptions()
    .option('--nproc-per-node <n>', 'ranks on this node: N, auto (GPUs if any, else one per core), gpu or cpu (default: auto)')
    .option('--nnodes <n>', 'number of nodes (N, or N:N; elastic ranges are not supported) (default: 1)')
    .option('--node-rank <r>', "this node's rank, 0..nnodes-1 (default: 0)")
    .option('--master-addr <addr>', 'address of node 0, where the rendezvous store runs (default: 127.0.0.1)')
    .option('--master-port <port>', 'port of the rendezvous store (default: 29500)')
    .option('--rdzv-endpoint <host[:port]>', 'torchrun spelling of --master-addr and --master-port together')
    .option('--store-host <addr>', 'address the store listens on, node 0 only (default: the master address; 0.0.0.0 = all interfaces)')
    .option('--standalone', 'single node, store on a free port (ignores --master-port)')
    .option('--max-restarts <n>', 'restarts of the whole group after a failure (default: 0)')
    .option('--monitor-interval <s>', "seconds between checks of the other nodes' state (default: 0.1)")
    .option('--grace-period <s>', 'seconds between SIGTERM and SIGKILL when stopping ranks (default: 30)')
    .option('--rdzv-timeout <s>', 'seconds to wait for every node to join (default: 300)')
    .option(
      '--heartbeat-timeout <s>',
      'seconds of silence after which a node, the store or the --hostfile starter counts as lost; heartbeats every fifth of it (default: 15)',
    )
    .option('--run-id <id>', 'job id shared by all nodes (letters, digits, . _ -) (default: random on one node, "none" on several)')
    .addOption(new Option('--rdzv-id <id>', 'alias of --run-id').hideHelp())
    .option('--log-dir <dir>', 'write each rank\'s output to <dir>/<run-id>/attempt_<n>/<rank>/{stdout,stderr}.log')
    .option('-r, --redirects <spec>', 'streams sent to files only: 0 none, 1 stdout, 2 stderr, 3 both, or per local rank 0:3,1:2')
    .option('-t, --tee <spec>', 'streams sent to files and the console (same values as --redirects)')
    .option('--dry-run', 'print what would run (commands and environment, token redacted) and exit')
    .option('--no-node', 'run the script as an executable instead of with node')
    .addOption(new Option('--no-python', 'alias of --no-node (torchrun spelling)').hideHelp())
    .option('--emulate-nodes <n>', "split this launcher's ranks into N emulated nodes (development and tests) (default: 1)")
    .option('--one-gpu', 'run every rank on CUDA device 0 (pick it with CUDA_VISIBLE_DEVICES), NCCL ranks sharing it over sockets (development and tests)')
    .option('--hostfile <path>', 'DeepSpeed hostfile (`host slots=N`): start one agent per host over ssh')
    .option('--include <spec>', 'hosts/slots to use from the hostfile: NAME[:SLOT[,SLOT]]@NAME...')
    .option('--exclude <spec>', 'hosts/slots to leave out from the hostfile: NAME[:SLOT[,SLOT]]@NAME...')
    .option('--num-nodes <n>', 'use the first N hosts of the hostfile')
    .option('--num-gpus <n>', 'use the first N slots of every host of the hostfile')
    .option('--ssh <command>', 'ssh command used with --hostfile (default: ssh, with BatchMode and keepalives added)')
    .option('--env-allow <list>', 'with --hostfile: carry only these variables to the nodes (names or PREFIX*, comma-separated)')
    .option('--env-deny <list>', 'with --hostfile: never carry these variables to the nodes (names or PREFIX*, comma-separated)')
    .option('--env-file <path>', 'with --hostfile: NAME=VALUE lines every node gets (default: ~/.mics_env and ./.mics_env)')
    .option('--no-slurm', 'ignore SLURM_* variables')
    .option(
      '--stdin-lifeline',
      "set by --hostfile on each node's agent: read the starter's messages on standard input; stop the ranks when it closes or falls silent",
    )
    .showHelpAfterError(false);
  return program;
}

type Source = { value: string; from: string } | undefined;

/** A value from the command line, else from its MICS_* variable, with a name for messages. */
function pick(cli: string | undefined, flag: string, env: NodeJS.ProcessEnv, envName: string): Source {
  if (cli !== undefined) return { value: cli, from: flag };
  const v = env[envName];
  if (v !== undefined && v !== '') return { value: v, from: envName };
  return undefined;
}

function parseIntValue(src: { value: string; from: string }, min: number, max: number, what: string): number {
  const t = src.value.trim();
  if (!/^\d+$/.test(t) || Number(t) < min || Number(t) > max) {
    throw new UsageError(`invalid ${src.from} '${src.value}': expected ${what}`);
  }
  return Number(t);
}

function parseSeconds(src: { value: string; from: string }, allowZero: boolean): number {
  const t = src.value.trim();
  const n = Number(t);
  if (t === '' || !Number.isFinite(n) || n < 0 || (!allowZero && n === 0)) {
    throw new UsageError(`invalid ${src.from} '${src.value}': expected a ${allowZero ? 'non-negative' : 'positive'} number of seconds`);
  }
  return Math.round(n * 1000);
}

function parseBool(src: { value: string; from: string }): boolean {
  const t = src.value.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(t)) return true;
  if (['0', 'false', 'no', 'off'].includes(t)) return false;
  throw new UsageError(`invalid ${src.from} '${src.value}': expected 1/true/yes/on or 0/false/no/off`);
}

/** Parses an --nproc-per-node value. */
export function parseNproc(src: { value: string; from: string }): NprocSpec {
  const t = src.value.trim().toLowerCase();
  if (t === 'auto' || t === 'gpu' || t === 'cpu') return t;
  return parseIntValue(src, 1, 1 << 16, "a positive integer, 'auto', 'gpu' or 'cpu'");
}

/** Parses a --redirects / --tee value (`3`, or `0:3,1:2`). */
export function parseStdSpec(src: { value: string; from: string } | undefined): StdSpec {
  if (src === undefined) return { all: 0, byLocalRank: new Map() };
  const t = src.value.trim();
  const what = "0 (none), 1 (stdout), 2 (stderr), 3 (both), or per local rank like '0:3,1:2'";
  if (/^[0-3]$/.test(t)) return { all: Number(t) as StdStreams, byLocalRank: new Map() };
  const byLocalRank = new Map<number, StdStreams>();
  for (const part of t.split(',')) {
    const m = /^\s*(\d+)\s*:\s*([0-3])\s*$/.exec(part);
    if (!m) throw new UsageError(`invalid ${src.from} '${src.value}': expected ${what}`);
    if (byLocalRank.has(Number(m[1]))) throw new UsageError(`invalid ${src.from} '${src.value}': local rank ${m[1]} is given twice`);
    byLocalRank.set(Number(m[1]), Number(m[2]) as StdStreams);
  }
  return { all: 0, byLocalRank };
}

/** Run ids end up in store keys and log paths: keep them to a safe alphabet. */
function parseRunId(src: { value: string; from: string }): string {
  if (!/^[A-Za-z0-9_.-]{1,128}$/.test(src.value) || src.value === '.' || src.value === '..') {
    throw new UsageError(`invalid ${src.from} '${src.value}': expected 1-128 letters, digits, '.', '_' or '-'`);
  }
  return src.value;
}

function parseHost(src: { value: string; from: string }): string {
  if (src.value.trim() === '' || /\s/.test(src.value.trim())) {
    throw new UsageError(`invalid ${src.from} '${src.value}': expected a host name or IP address`);
  }
  return src.value.trim();
}

/** Splits an ssh command line on whitespace (quoting is not supported: keep it simple and visible). */
function parseSsh(src: Source): string[] {
  if (src === undefined) return ['ssh'];
  const parts = src.value.trim().split(/\s+/).filter((s) => s !== '');
  if (parts.length === 0) throw new UsageError(`invalid ${src.from} '${src.value}': expected a command such as 'ssh -p 2222'`);
  return parts;
}

/** Turns raw values into a {@link LaunchConfig}, applying the environment and Slurm. */
export function resolveConfig(
  raw: RawOptions,
  script: string,
  scriptArgs: string[],
  env: NodeJS.ProcessEnv,
): LaunchConfig {
  const E = OPTION_ENV;
  const nprocSrc = pick(raw.nprocPerNode, '--nproc-per-node', env, E.nprocPerNode);
  const nprocPerNode: NprocSpec = nprocSrc ? parseNproc(nprocSrc) : 'auto';

  const standaloneSrc = raw.standalone ? true : pick(undefined, '--standalone', env, E.standalone);
  const standalone = standaloneSrc === true ? true : standaloneSrc ? parseBool(standaloneSrc) : false;

  const hostfileSrc = pick(raw.hostfile, '--hostfile', env, E.hostfile);
  const hostfile = raw.stdinLifeline ? undefined : hostfileSrc?.value;
  const slurm = raw.slurm && !hostfile && !standalone && !raw.stdinLifeline ? slurmLayout(env) : undefined;

  const nnodesSrc = pick(raw.nnodes, '--nnodes', env, E.nnodes);
  let nnodes = slurm?.nnodes ?? 1;
  if (nnodesSrc) {
    const m = /^\s*(\d+)\s*:\s*(\d+)\s*$/.exec(nnodesSrc.value);
    if (m) {
      if (m[1] !== m[2]) {
        throw new UsageError(`invalid ${nnodesSrc.from} '${nnodesSrc.value}': elastic ranges (MIN:MAX) are not supported; give a fixed N or N:N`);
      }
      nnodes = parseIntValue({ value: m[1], from: nnodesSrc.from }, 1, 1 << 20, 'a positive integer');
    } else {
      nnodes = parseIntValue(nnodesSrc, 1, 1 << 20, 'a positive integer (or N:N)');
    }
  }
  const nodeRankSrc = pick(raw.nodeRank, '--node-rank', env, E.nodeRank);
  const nodeRank = nodeRankSrc
    ? parseIntValue(nodeRankSrc, 0, 1 << 20, 'a non-negative integer')
    : (slurm?.nodeRank ?? 0);
  if (standalone && nnodes !== 1) {
    throw new UsageError(`--standalone runs a single node, but --nnodes is ${nnodes}`);
  }
  if (nodeRank >= nnodes) {
    throw new UsageError(`invalid ${nodeRankSrc?.from ?? 'SLURM_PROCID'} '${nodeRank}': expected 0..${nnodes - 1} (--nnodes is ${nnodes})`);
  }

  if (raw.rdzvEndpoint !== undefined) {
    if (raw.masterAddr !== undefined || raw.masterPort !== undefined) {
      throw new UsageError('--rdzv-endpoint gives the master address and port: leave out --master-addr and --master-port');
    }
    const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(raw.rdzvEndpoint) ?? /^([^:\s]+)(?::(\d+))?$/.exec(raw.rdzvEndpoint);
    if (!m) throw new UsageError(`invalid --rdzv-endpoint '${raw.rdzvEndpoint}': expected host, host:port or [ipv6]:port`);
    raw = { ...raw, masterAddr: m[1], masterPort: m[2] };
  }
  const addrSrc = pick(raw.masterAddr, '--master-addr', env, E.masterAddr);
  const masterAddr = addrSrc ? parseHost(addrSrc) : (slurm?.masterAddr ?? '127.0.0.1');
  const portSrc = pick(raw.masterPort, '--master-port', env, E.masterPort);
  let masterPort = portSrc ? parseIntValue(portSrc, 0, 65535, 'a port number 0..65535 (0 = a free port, one node only)') : 29500;
  if (standalone) masterPort = 0;
  if (masterPort === 0 && nnodes > 1 && !hostfile) {
    throw new UsageError(`--master-port 0 (a free port) only works with one node; --nnodes is ${nnodes}`);
  }
  const storeHostSrc = pick(raw.storeHost, '--store-host', env, E.storeHost);
  const storeHost = storeHostSrc ? parseHost(storeHostSrc) : masterAddr;

  const restartsSrc = pick(raw.maxRestarts, '--max-restarts', env, E.maxRestarts);
  const maxRestarts = restartsSrc ? parseIntValue(restartsSrc, 0, 1000000, 'a non-negative integer') : 0;
  const monitorSrc = pick(raw.monitorInterval, '--monitor-interval', env, E.monitorInterval);
  const monitorIntervalMs = monitorSrc ? parseSeconds(monitorSrc, false) : 100;
  const graceSrc = pick(raw.gracePeriod, '--grace-period', env, E.gracePeriod);
  const gracePeriodMs = graceSrc ? parseSeconds(graceSrc, true) : 30000;
  const rdzvSrc = pick(raw.rdzvTimeout, '--rdzv-timeout', env, E.rdzvTimeout);
  const rdzvTimeoutMs = rdzvSrc ? parseSeconds(rdzvSrc, false) : 300000;
  const heartbeatSrc = pick(raw.heartbeatTimeout, '--heartbeat-timeout', env, E.heartbeatTimeout);
  const heartbeatTimeoutMs = heartbeatSrc ? parseSeconds(heartbeatSrc, false) : 15000;
  if (heartbeatTimeoutMs < 500) {
    throw new UsageError(`invalid ${heartbeatSrc?.from} '${heartbeatSrc?.value}': expected at least 0.5 seconds`);
  }
  const envAllowSrc = pick(raw.envAllow, '--env-allow', env, E.envAllow);
  const envDenySrc = pick(raw.envDeny, '--env-deny', env, E.envDeny);
  const envFileSrc = pick(raw.envFile, '--env-file', env, E.envFile);

  const runIdSrc = raw.runId !== undefined ? { value: raw.runId, from: '--run-id' } : pick(raw.rdzvId, '--rdzv-id', env, E.runId);
  const runId = runIdSrc ? parseRunId(runIdSrc) : slurm ? parseRunId({ value: slurm.runId, from: 'SLURM_JOB_ID' }) : undefined;

  const logDirSrc = pick(raw.logDir, '--log-dir', env, E.logDir);
  const logDir = logDirSrc?.value;
  const redirectsSrc = pick(raw.redirects, '--redirects', env, E.redirects);
  const teeSrc = pick(raw.tee, '--tee', env, E.tee);
  // A log directory alone means "one file per rank" (both streams), as the issue asks; explicit
  // --redirects/--tee choose streams instead.
  const redirects = parseStdSpec(redirectsSrc ?? (logDir !== undefined && !teeSrc ? { value: '3', from: '--log-dir' } : undefined));
  const tee = parseStdSpec(teeSrc);

  const emulateSrc = pick(raw.emulateNodes, '--emulate-nodes', env, E.emulateNodes);
  const emulateNodes = emulateSrc ? parseIntValue(emulateSrc, 1, 1 << 16, 'a positive integer') : 1;
  if (typeof nprocPerNode === 'number' && nprocPerNode % emulateNodes !== 0) {
    throw new UsageError(
      `--emulate-nodes ${emulateNodes} must divide --nproc-per-node ${nprocPerNode} (each emulated node gets the same number of ranks)`,
    );
  }

  const oneGpuSrc = raw.oneGpu === true ? undefined : pick(undefined, '--one-gpu', env, E.oneGpu);
  if (oneGpuSrc && !['0', '1'].includes(oneGpuSrc.value.trim())) {
    throw new UsageError(`invalid ${oneGpuSrc.from} '${oneGpuSrc.value}': expected 1 (on) or 0 (off)`);
  }
  const oneGpu = raw.oneGpu === true || oneGpuSrc?.value.trim() === '1' ? 0 : undefined;
  if (oneGpu !== undefined && (nnodes > 1 || hostfile)) {
    throw new UsageError('--one-gpu runs every rank of a single node on one GPU; it cannot be combined with --nnodes > 1 or --hostfile');
  }

  const selection: HostSelection = {
    include: raw.include,
    exclude: raw.exclude,
    numNodes: raw.numNodes !== undefined ? parseIntValue({ value: raw.numNodes, from: '--num-nodes' }, 1, 1 << 20, 'a positive integer') : undefined,
    numGpus: raw.numGpus !== undefined ? parseIntValue({ value: raw.numGpus, from: '--num-gpus' }, 1, 1 << 16, 'a positive integer') : undefined,
  };
  const usesSelection = Object.values(selection).some((v) => v !== undefined);
  if (!hostfile && usesSelection) {
    throw new UsageError('--include, --exclude, --num-nodes and --num-gpus select hosts of a --hostfile; no --hostfile was given');
  }
  if (!hostfile && !raw.stdinLifeline && [raw.envAllow, raw.envDeny, raw.envFile].some((v) => v !== undefined)) {
    throw new UsageError(
      '--env-allow, --env-deny and --env-file choose what a --hostfile start carries to the nodes; no --hostfile was given ' +
        "(on one node every rank inherits the launcher's environment)",
    );
  }
  if (hostfile && (nnodesSrc || nodeRankSrc)) {
    throw new UsageError('--hostfile decides the node count and node ranks; leave out --nnodes and --node-rank (use --num-nodes to take fewer hosts)');
  }

  return {
    script,
    scriptArgs,
    nprocPerNode,
    nnodes,
    nodeRank,
    masterAddr,
    masterPort,
    storeHost,
    standalone,
    maxRestarts,
    monitorIntervalMs,
    gracePeriodMs,
    rdzvTimeoutMs,
    runId,
    logDir,
    redirects,
    tee,
    redirectsText: redirectsSrc?.value,
    teeText: teeSrc?.value,
    masterAddrGiven: addrSrc !== undefined,
    storeHostGiven: storeHostSrc !== undefined,
    dryRun: raw.dryRun === true,
    runWithNode: raw.node && raw.python !== false,
    emulateNodes,
    oneGpu,
    hostfile,
    hostSelection: selection,
    ssh: parseSsh(pick(raw.ssh, '--ssh', env, E.ssh)),
    heartbeatTimeoutMs,
    envAllow: envAllowSrc ? parseEnvPatterns(envAllowSrc.value, envAllowSrc.from) : undefined,
    envDeny: envDenySrc ? parseEnvPatterns(envDenySrc.value, envDenySrc.from) : [],
    envFile: envFileSrc?.value,
    stdinLifeline: raw.stdinLifeline === true,
    slurm,
  };
}

/**
 * Accepts torchrun's and DeepSpeed's underscore spellings (`--nproc_per_node`, `--master_addr`,
 * `--num_gpus`) by rewriting long options before the script to their dashed form. Stops at the
 * script (or `--`): the script's own arguments are never touched.
 */
export function normalizeOptionSpelling(args: readonly string[], program: Command): string[] {
  const takesValue = new Set(
    program.options.filter((o) => o.required || o.optional).flatMap((o) => [o.long, o.short].filter((f): f is string => f !== undefined)),
  );
  const out: string[] = [];
  let i = 0;
  for (; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--' || !arg.startsWith('-')) break;
    if (!arg.startsWith('--')) {
      out.push(arg);
      if (takesValue.has(arg) && i + 1 < args.length) out.push(args[++i]);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = (eq > 0 ? arg.slice(0, eq) : arg).replace(/_/g, '-');
    out.push(eq > 0 ? name + arg.slice(eq) : name);
    if (eq < 0 && takesValue.has(name) && i + 1 < args.length) out.push(args[++i]);
  }
  return [...out, ...args.slice(i)];
}

/** Parsed command line: a config to run, or help/version text already printed (exit 0). */
export type ParseResult = { kind: 'run'; config: LaunchConfig } | { kind: 'exit'; code: number };

/**
 * Parses the launcher's arguments (without `node` and the script path). Usage problems become a
 * {@link UsageError}; --help prints through `write` and yields `{kind: 'exit', code: 0}`.
 */
export function parseLaunchArgs(
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  write: (s: string) => void = (s) => process.stdout.write(s),
): ParseResult {
  const program = buildLaunchProgram();
  let errText = '';
  program.exitOverride();
  program.configureOutput({ writeOut: write, writeErr: (s) => (errText += s), outputError: (s) => (errText += s) });
  try {
    program.parse(normalizeOptionSpelling(args, program), { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version') {
        return { kind: 'exit', code: 0 };
      }
      throw new UsageError((errText.trim() || err.message).replace(/^error: /, ''));
    }
    throw err;
  }
  const raw = program.opts<RawOptions>();
  const [script, scriptArgs] = program.processedArgs as [string, string[] | undefined];
  return { kind: 'run', config: resolveConfig(raw, script, scriptArgs ?? [], env) };
}
