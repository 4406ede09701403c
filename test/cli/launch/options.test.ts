/** Option parsing, MICS_* defaults, validation messages, rank layout and the worker environment. */
import { resolveNproc } from '../../../lib/cli/launch/devices';
import { workerEnvironment, describeWorkerEnvironment } from '../../../lib/cli/launch/environment';
import { planJob, type NodeRecord } from '../../../lib/cli/launch/layout';
import { parseLaunchArgs, streamsFor, type LaunchConfig } from '../../../lib/cli/launch/options';
import { describeExit } from '../../../lib/cli/launch/summary';

function parse(args: string[], env: NodeJS.ProcessEnv = {}): LaunchConfig {
  const r = parseLaunchArgs(args, env, () => undefined);
  if (r.kind !== 'run') throw new Error('expected a config');
  return r.config;
}

describe('parseLaunchArgs', () => {
  it('has torchrun defaults', () => {
    const c = parse(['train.js']);
    expect(c).toMatchObject({
      script: 'train.js',
      scriptArgs: [],
      nprocPerNode: 'auto',
      nnodes: 1,
      nodeRank: 0,
      masterAddr: '127.0.0.1',
      masterPort: 29500,
      storeHost: '127.0.0.1',
      maxRestarts: 0,
      monitorIntervalMs: 100,
      gracePeriodMs: 30000,
      rdzvTimeoutMs: 300000,
      runId: undefined,
      dryRun: false,
      runWithNode: true,
      emulateNodes: 1,
      ssh: ['ssh'],
    });
  });

  it('passes everything after the script to the script', () => {
    const c = parse(['--nproc-per-node', '2', 'train.js', '--nproc-per-node', '9', '-x']);
    expect(c.nprocPerNode).toBe(2);
    expect(c.scriptArgs).toEqual(['--nproc-per-node', '9', '-x']);
  });

  it('reads defaults from MICS_* variables; the command line wins', () => {
    const env = { MICS_NNODES: '4', MICS_NODE_RANK: '3', MICS_MASTER_ADDR: 'head', MICS_MASTER_PORT: '1234', MICS_MAX_RESTARTS: '2', MICS_GRACE_PERIOD: '1.5' };
    expect(parse(['t.js'], env)).toMatchObject({ nnodes: 4, nodeRank: 3, masterAddr: 'head', storeHost: 'head', masterPort: 1234, maxRestarts: 2, gracePeriodMs: 1500 });
    expect(parse(['--node-rank', '1', 't.js'], env).nodeRank).toBe(1);
  });

  it('--standalone means one node and a free port', () => {
    expect(parse(['--standalone', '--master-port', '5000', 't.js'])).toMatchObject({ standalone: true, masterPort: 0, nnodes: 1 });
    expect(() => parse(['--standalone', '--nnodes', '2', 't.js'])).toThrow('--standalone runs a single node, but --nnodes is 2');
  });

  it('parses --redirects/--tee per local rank, and --log-dir alone means files for both streams', () => {
    const c = parse(['-r', '0:3,1:2', '-t', '1', 't.js']);
    expect([streamsFor(c.redirects, 0), streamsFor(c.redirects, 1), streamsFor(c.redirects, 2)]).toEqual([3, 2, 0]);
    expect(streamsFor(c.tee, 5)).toBe(1);
    expect(streamsFor(parse(['--log-dir', '/tmp/x', 't.js']).redirects, 0)).toBe(3);
    expect(streamsFor(parse(['t.js']).redirects, 0)).toBe(0);
  });

  it.each([
    [['--nproc-per-node', 'abc', 't.js'], "invalid --nproc-per-node 'abc': expected a positive integer, 'auto', 'gpu' or 'cpu'"],
    [['--nproc-per-node', '0', 't.js'], "invalid --nproc-per-node '0'"],
    [['--nnodes', '1:4', 't.js'], "invalid --nnodes '1:4': elastic ranges (MIN:MAX) are not supported"],
    [['--nnodes', 'two', 't.js'], "invalid --nnodes 'two': expected a positive integer (or N:N)"],
    [['--nnodes', '2', '--node-rank', '2', 't.js'], "invalid --node-rank '2': expected 0..1 (--nnodes is 2)"],
    [['--master-port', '70000', 't.js'], "invalid --master-port '70000': expected a port number 0..65535"],
    [['--nnodes', '2', '--master-port', '0', 't.js'], '--master-port 0 (a free port) only works with one node'],
    [['--max-restarts', '-1', 't.js'], "invalid --max-restarts '-1': expected a non-negative integer"],
    [['--monitor-interval', '0', 't.js'], "invalid --monitor-interval '0': expected a positive number of seconds"],
    [['--grace-period', 'soon', 't.js'], "invalid --grace-period 'soon': expected a non-negative number of seconds"],
    [['--run-id', 'a/b', 't.js'], "invalid --run-id 'a/b': expected 1-128 letters, digits, '.', '_' or '-'"],
    [['--redirects', '4', 't.js'], "invalid --redirects '4': expected 0 (none), 1 (stdout), 2 (stderr), 3 (both)"],
    [['--tee', '0:1,0:2', 't.js'], 'local rank 0 is given twice'],
    [['--nproc-per-node', '3', '--emulate-nodes', '2', 't.js'], '--emulate-nodes 2 must divide --nproc-per-node 3'],
    [['--include', 'a', 't.js'], 'select hosts of a --hostfile; no --hostfile was given'],
    [['--hostfile', 'hf', '--nnodes', '2', 't.js'], '--hostfile decides the node count and node ranks'],
    [['--bogus', 't.js'], "unknown option '--bogus'"],
    [[], "missing required argument 'script'"],
  ])('%j is refused: %s', (args, message) => {
    expect(() => parse(args)).toThrow(message);
  });

  it('names the environment variable when a bad value came from there', () => {
    expect(() => parse(['t.js'], { MICS_NNODES: 'x' })).toThrow("invalid MICS_NNODES 'x'");
    expect(() => parse(['t.js'], { MICS_STANDALONE: 'maybe' })).toThrow("invalid MICS_STANDALONE 'maybe': expected 1/true/yes/on or 0/false/no/off");
  });

  it('--help prints the options and asks to exit 0', () => {
    let text = '';
    const r = parseLaunchArgs(['--help'], {}, (s) => (text += s));
    expect(r).toEqual({ kind: 'exit', code: 0 });
    for (const flag of ['--nproc-per-node', '--nnodes', '--node-rank', '--master-addr', '--master-port', '--standalone', '--max-restarts',
      '--monitor-interval', '--log-dir', '--redirects', '--tee', '--dry-run', '--no-node', '--emulate-nodes', '--hostfile', '--include', '--exclude',
      '--heartbeat-timeout', '--env-allow', '--env-deny', '--env-file', '--stdin-lifeline']) {
      expect(text).toContain(flag);
    }
  });
});

describe('multi-node options', () => {
  it('--heartbeat-timeout: 15 s by default, at least 0.5 s, also from MICS_HEARTBEAT_TIMEOUT', () => {
    expect(parse(['t.js']).heartbeatTimeoutMs).toBe(15000);
    expect(parse(['--heartbeat-timeout', '2.5', 't.js']).heartbeatTimeoutMs).toBe(2500);
    expect(parse(['t.js'], { MICS_HEARTBEAT_TIMEOUT: '30' }).heartbeatTimeoutMs).toBe(30000);
    expect(() => parse(['--heartbeat-timeout', '0.1', 't.js'])).toThrow("invalid --heartbeat-timeout '0.1': expected at least 0.5 seconds");
    expect(() => parse(['--heartbeat-timeout', 'soon', 't.js'])).toThrow("invalid --heartbeat-timeout 'soon': expected a positive number of seconds");
  });

  it('--env-allow / --env-deny / --env-file belong to --hostfile starts; lists are checked', () => {
    const c = parse(['--hostfile', 'h', '--env-allow', 'NCCL_*,FOO', '--env-deny', 'SECRET', '--env-file', 'job.env', 't.js']);
    expect([c.envAllow, c.envDeny, c.envFile]).toEqual([['NCCL_*', 'FOO'], ['SECRET'], 'job.env']);
    expect(parse(['--hostfile', 'h', 't.js'], { MICS_ENV_DENY: 'A,B*' }).envDeny).toEqual(['A', 'B*']);
    expect(() => parse(['--env-deny', 'FOO', 't.js'])).toThrow(
      '--env-allow, --env-deny and --env-file choose what a --hostfile start carries to the nodes; no --hostfile was given',
    );
    expect(() => parse(['--hostfile', 'h', '--env-allow', 'A B', 't.js'])).toThrow("invalid --env-allow 'A B': 'A B' is not a variable name");
  });
});

describe('resolveNproc', () => {
  it('auto = GPUs if any, else cores; gpu without GPUs is an error', () => {
    expect(resolveNproc('auto', () => 8, () => 2)).toBe(8);
    expect(resolveNproc('auto', () => 0, () => 2)).toBe(2);
    expect(resolveNproc('cpu', () => 8, () => 2)).toBe(2);
    expect(resolveNproc(3, () => 8, () => 2)).toBe(3);
    expect(() => resolveNproc('gpu', () => 0, () => 2)).toThrow('--nproc-per-node gpu: no GPU found');
  });
});

describe('planJob and the worker environment', () => {
  const node = (nodeRank: number, nproc: number, emulateNodes = 1): NodeRecord => ({
    nodeRank, host: `h${nodeRank}`, nproc, emulateNodes, runId: 'r', nnodes: 3, maxRestarts: 0,
  });

  it('assigns ranks node-major, also with different rank counts and emulated nodes', () => {
    const records = [node(2, 2), node(0, 4, 2), node(1, 1)];
    expect(planJob(records, 0).ranks.map((r) => [r.rank, r.groupRank, r.localRank, r.localWorldSize])).toEqual([
      [0, 0, 0, 2], [1, 0, 1, 2], [2, 1, 0, 2], [3, 1, 1, 2],
    ]);
    expect(planJob(records, 1).ranks.map((r) => [r.rank, r.groupRank, r.localRank])).toEqual([[4, 2, 0]]);
    const last = planJob(records, 2);
    expect(last.ranks.map((r) => [r.rank, r.groupRank, r.localRank])).toEqual([[5, 3, 0], [6, 3, 1]]);
    expect([last.worldSize, last.groupWorldSize]).toEqual([7, 4]);
  });

  it('refuses records that disagree, naming the node and the difference', () => {
    expect(() => planJob([node(0, 1), node(1, 1), { ...node(2, 1), runId: 'other' }], 0)).toThrow(
      "node 2 (h2) was started with run id 'other' (this node: 'r')",
    );
    expect(() => planJob([node(0, 1), { ...node(1, 1), nnodes: 2 }, node(2, 1)], 0)).toThrow('--nnodes 2 (this node: 3)');
    expect(() => planJob([node(0, 1), node(2, 1)], 0)).toThrow('expected 0..2');
  });

  it('exports the contract variables, and OMP_NUM_THREADS only when unset and several ranks run here', () => {
    const layout = planJob([node(0, 2), node(1, 2), node(2, 2)], 1);
    const job = { masterAddr: 'm', masterPort: 7, runId: 'r', restartCount: 2, maxRestarts: 3, token: 'f'.repeat(64) };
    const env = workerEnvironment({ PATH: '/bin', CUDA_VISIBLE_DEVICES: '4,5' }, layout, layout.ranks[1], job);
    expect(env).toMatchObject({
      RANK: '3', LOCAL_RANK: '1', WORLD_SIZE: '6', LOCAL_WORLD_SIZE: '2', GROUP_RANK: '1', GROUP_WORLD_SIZE: '3',
      ROLE_RANK: '3', ROLE_WORLD_SIZE: '6', MASTER_ADDR: 'm', MASTER_PORT: '7', TORCHELASTIC_RESTART_COUNT: '2',
      TORCHELASTIC_MAX_RESTARTS: '3', TORCHELASTIC_RUN_ID: 'r', MICS_STORE_TOKEN: 'f'.repeat(64), MICS_STORE_HOSTED: '1',
      OMP_NUM_THREADS: '1', CUDA_VISIBLE_DEVICES: '4,5', PATH: '/bin',
    });
    expect(workerEnvironment({ OMP_NUM_THREADS: '8' }, layout, layout.ranks[0], job).OMP_NUM_THREADS).toBe('8');
    const single = planJob([{ ...node(0, 1), nnodes: 1 }], 0);
    expect(workerEnvironment({}, single, single.ranks[0], job).OMP_NUM_THREADS).toBeUndefined();
    expect(describeWorkerEnvironment({}, env).join(' ')).toMatch(/MICS_STORE_TOKEN=<redacted>/);
    expect(describeWorkerEnvironment({}, env).join(' ')).not.toContain('f'.repeat(64));
  });

  it('describes exits as torchrun does', () => {
    expect(describeExit({ exitCode: 3, signal: null, error: undefined })).toBe('3');
    expect(describeExit({ exitCode: null, signal: 'SIGKILL', error: undefined })).toBe('Signal 9 (SIGKILL)');
  });
});

describe('torchrun and DeepSpeed spellings', () => {
  it('accepts underscores and --opt=value before the script, never touching the script arguments', () => {
    const c = parse(['--nproc_per_node=2', '--master_addr', 'h0', '--node_rank', '1', '--nnodes', '2', 'train.js', '--batch_size', '8']);
    expect(c).toMatchObject({ nprocPerNode: 2, masterAddr: 'h0', nodeRank: 1, nnodes: 2, scriptArgs: ['--batch_size', '8'] });
    expect(parse(['--hostfile', 'hf', '--num_gpus', '2', 't.js']).hostSelection.numGpus).toBe(2);
    // An option value that looks like a name with underscores is a value, not an option.
    expect(parse(['--run-id', 'my_job', 't.js']).runId).toBe('my_job');
  });
});

describe('--rdzv-endpoint', () => {
  it('sets the master address and port, torchrun style', () => {
    expect(parse(['--rdzv-endpoint', 'head:1234', 't.js'])).toMatchObject({ masterAddr: 'head', masterPort: 1234 });
    expect(parse(['--rdzv-endpoint', '[fd00::1]:99', 't.js'])).toMatchObject({ masterAddr: 'fd00::1', masterPort: 99 });
    expect(parse(['--rdzv-endpoint', 'head', 't.js'])).toMatchObject({ masterAddr: 'head', masterPort: 29500 });
    expect(() => parse(['--rdzv-endpoint', 'a:b:c', 't.js'])).toThrow("invalid --rdzv-endpoint 'a:b:c'");
    expect(() => parse(['--rdzv-endpoint', 'a:1', '--master-port', '2', 't.js'])).toThrow('leave out --master-addr and --master-port');
  });
});
