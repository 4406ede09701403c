/** Slurm: node list expansion and the mapping of SLURM_* variables to the launcher's layout. */
import { expandNodelist, slurmLayout } from '../../../lib/cli/launch/slurm';
import { requireBuilt, runLaunch, worker } from './harness';

describe('expandNodelist', () => {
  it.each([
    ['node[01-03,07],gpu5', ['node01', 'node02', 'node03', 'node07', 'gpu5']],
    ['a1', ['a1']],
    ['a,b,c', ['a', 'b', 'c']],
    ['n[8-11]', ['n8', 'n9', 'n10', 'n11']],
    ['n[098-101]', ['n098', 'n099', 'n100', 'n101']],
    ['rack[1-2]-n[1-2]', ['rack1-n1', 'rack1-n2', 'rack2-n1', 'rack2-n2']],
    ['gpu[5],cpu[1-2]x', ['gpu5', 'cpu1x', 'cpu2x']],
  ])('%s', (list, hosts) => {
    expect(expandNodelist(list)).toEqual(hosts);
  });

  it.each([
    ['node[01-03', "'[' without ']'"],
    ['node01]', "']' without '['"],
    ['node[3-1]', 'range 3-1 goes backwards'],
    ['node[a-b]', "'a-b' is not N or N-M"],
    ['a,,b', 'empty entry'],
    ['', 'it is empty'],
  ])('rejects %j', (list, message) => {
    expect(() => expandNodelist(list)).toThrow(message);
  });
});

describe('slurmLayout', () => {
  const step = {
    SLURM_JOB_ID: '4242',
    SLURM_STEP_ID: '0',
    SLURM_PROCID: '2',
    SLURM_NNODES: '3',
    SLURM_NTASKS: '3',
    SLURM_JOB_NODELIST: 'gpu[07-08],cpu1',
  };

  it('maps one task per node to nnodes, node rank, master address and run id', () => {
    expect(slurmLayout(step)).toEqual({
      nnodes: 3,
      nodeRank: 2,
      masterAddr: 'gpu07',
      runId: '4242.0',
      hosts: ['gpu07', 'gpu08', 'cpu1'],
    });
  });

  it('prefers the step variables over the job ones', () => {
    const layout = slurmLayout({ ...step, SLURM_STEP_NODELIST: 'gpu08,cpu1', SLURM_STEP_NUM_NODES: '2', SLURM_STEP_NUM_TASKS: '2', SLURM_PROCID: '1' });
    expect(layout).toMatchObject({ nnodes: 2, nodeRank: 1, masterAddr: 'gpu08' });
  });

  it('is undefined outside a step (no SLURM_PROCID, e.g. in the sbatch script itself)', () => {
    expect(slurmLayout({ SLURM_JOB_ID: '1', SLURM_JOB_NODELIST: 'a' })).toBeUndefined();
    expect(slurmLayout({})).toBeUndefined();
  });

  it('explains the fix when a step runs several tasks per node', () => {
    expect(() => slurmLayout({ ...step, SLURM_NTASKS: '12' })).toThrow(
      'the Slurm step runs 12 task(s) on 3 node(s); mics-launch starts the ranks itself and needs exactly one task per node (srun --ntasks-per-node=1',
    );
  });

  it('rejects inconsistent variables', () => {
    expect(() => slurmLayout({ ...step, SLURM_NNODES: '4', SLURM_NTASKS: '4' })).toThrow("Slurm says 4 node(s) but its node list 'gpu[07-08],cpu1' names 3");
    expect(() => slurmLayout({ ...step, SLURM_PROCID: 'x' })).toThrow("invalid SLURM_PROCID 'x'");
  });
});

describe('the launcher under Slurm', () => {
  beforeAll(requireBuilt);

  it('takes node count, node rank, master address and run id from SLURM_*, options still win', async () => {
    const env = { SLURM_JOB_ID: '77', SLURM_STEP_ID: '3', SLURM_PROCID: '1', SLURM_NNODES: '2', SLURM_NTASKS: '2', SLURM_JOB_NODELIST: 'node[01-02]' };
    const r = await runLaunch(['--dry-run', '--nproc-per-node', '2', worker], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^node 1 of 2 on .*: 2 rank\(s\)/m);
    expect(r.stdout).toMatch(/^store: joined at node01:29500$/m);
    expect(r.stdout).toMatch(/^rank 2: .*GROUP_RANK=1 .*MASTER_ADDR=node01 .*TORCHELASTIC_RUN_ID=77\.3/m);
    const overridden = await runLaunch(['--dry-run', '--nproc-per-node', '2', '--master-addr', '10.0.0.5', worker], env);
    expect(overridden.stdout).toMatch(/^store: joined at 10\.0\.0\.5:29500$/m);
    const ignored = await runLaunch(['--dry-run', '--nproc-per-node', '1', '--no-slurm', worker], env);
    expect(ignored.stdout).toMatch(/^node 0 of 1 /m);
  });
});
