/**
 * The rank environment contract, both directions: rankEnvironment() writes what every starter
 * of ranks exports (mics-launch, the benchmarks' local ranks, the tests' helpers) and
 * readRankEnvironment() reads it back in init(): a round trip, plus what the reader does with
 * missing and bad values.
 */
import {
  firstSlurmHost,
  parseTasksPerNode,
  portFromJobId,
  readRankEnvironment,
  rankEnvironment,
  type RankLaunch,
} from '../../lib/comm/environment';

const launch: RankLaunch = {
  rank: 5,
  worldSize: 8,
  localRank: 1,
  localWorldSize: 2,
  node: 2,
  nodeCount: 4,
  masterAddr: '10.0.0.1',
  masterPort: 29511,
  storeToken: 'a'.repeat(64),
  storeHosted: true,
  runId: 'job7',
  restartCount: 2,
  maxRestarts: 3,
  agentLocalRank: 3,
  errorFile: '/tmp/errors/rank5.json',
};

describe('rankEnvironment()', () => {
  it('exports every variable of the contract, torchrun names first', () => {
    expect(rankEnvironment(launch)).toEqual({
      RANK: '5',
      LOCAL_RANK: '1',
      WORLD_SIZE: '8',
      LOCAL_WORLD_SIZE: '2',
      GROUP_RANK: '2',
      GROUP_WORLD_SIZE: '4',
      ROLE_NAME: 'default',
      ROLE_RANK: '5',
      ROLE_WORLD_SIZE: '8',
      MASTER_ADDR: '10.0.0.1',
      MASTER_PORT: '29511',
      TORCHELASTIC_RESTART_COUNT: '2',
      TORCHELASTIC_MAX_RESTARTS: '3',
      TORCHELASTIC_RUN_ID: 'job7',
      MICS_STORE_HOSTED: '1',
      MICS_AGENT_LOCAL_RANK: '3',
      MICS_STORE_TOKEN: 'a'.repeat(64),
      MICS_ERROR_FILE: '/tmp/errors/rank5.json',
    });
  });

  it('round-trips through readRankEnvironment()', () => {
    expect(readRankEnvironment(rankEnvironment(launch))).toEqual({
      source: 'torchrun',
      description: 'rank 5 of 8 from RANK/WORLD_SIZE; store on 10.0.0.1:29511',
      nodeFromHostname: false,
      rank: 5,
      worldSize: 8,
      localRank: 1,
      localWorldSize: 2,
      node: 2,
      masterAddr: '10.0.0.1',
      masterPort: 29511,
      storeToken: 'a'.repeat(64),
      storeHosted: true,
      keyPrefix: 'mics/job7/2',
      agentLocalRank: 3,
      errorFile: '/tmp/errors/rank5.json',
    });
  });

  it('defaults: rank 0 hosts the store, run "default", attempt 0, device = local rank, no error file', () => {
    const minimal: RankLaunch = { ...launch, storeHosted: false };
    delete minimal.runId;
    delete minimal.restartCount;
    delete minimal.maxRestarts;
    delete minimal.agentLocalRank;
    delete minimal.errorFile;
    const env = rankEnvironment(minimal);
    // Set explicitly, so a value inherited from an enclosing launcher cannot leak in.
    expect(env).toMatchObject({ MICS_STORE_HOSTED: '0', TORCHELASTIC_RUN_ID: 'default', TORCHELASTIC_RESTART_COUNT: '0', MICS_AGENT_LOCAL_RANK: '1' });
    expect(env).not.toHaveProperty('MICS_ERROR_FILE');
    expect(readRankEnvironment({ ...env })).toMatchObject({ storeHosted: false, keyPrefix: 'mics/default/0', agentLocalRank: 1, errorFile: undefined });
  });

  it('laid over an inherited environment, replaces what an enclosing job left there', () => {
    const inherited = { RANK: '0', WORLD_SIZE: '2', MICS_STORE_HOSTED: '1', PATH: '/bin' };
    const env = { ...inherited, ...rankEnvironment({ ...launch, storeHosted: false }) };
    expect(readRankEnvironment(env)).toMatchObject({ rank: 5, worldSize: 8, storeHosted: false });
    expect(env.PATH).toBe('/bin');
  });
});

describe('readRankEnvironment()', () => {
  it('names missing and bad variables and what is valid', () => {
    expect(() => readRankEnvironment({})).toThrow(
      /missing environment variable\(s\) RANK, WORLD_SIZE, and no MPI or Slurm rank variables \(OMPI_COMM_WORLD_RANK, PMI_RANK, SLURM_PROCID\) either: start ranks with mics-launch, torchrun, mpirun or srun/,
    );
    // torchrun's names half set: the missing one is named, MPI's variables are not consulted.
    expect(() => readRankEnvironment({ RANK: '0', OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '2' })).toThrow(/missing environment variable\(s\) WORLD_SIZE,/);
    expect(() => readRankEnvironment({ RANK: '2', WORLD_SIZE: '2' })).toThrow('environment variable RANK=2 is not valid: use an integer in [0, 1]');
    expect(() => readRankEnvironment({ RANK: '0', WORLD_SIZE: '2' })).toThrow('missing environment variable(s) MASTER_ADDR, MASTER_PORT');
    // As many ranks as planGroups takes (MAX_WORLD_SIZE), no more.
    expect(() => readRankEnvironment({ RANK: '0', WORLD_SIZE: '1048577' })).toThrow('environment variable WORLD_SIZE=1048577 is not valid: use an integer in [1, 1048576]');
    const env = rankEnvironment(launch);
    expect(() => readRankEnvironment({ ...env, MICS_AGENT_LOCAL_RANK: '-1' })).toThrow(
      'environment variable MICS_AGENT_LOCAL_RANK=-1 is not valid: use an integer >= 0',
    );
    expect(() => readRankEnvironment({ ...env, MICS_STORE_TOKEN: '' })).toThrow('MICS_STORE_HOSTED=1 but MICS_STORE_TOKEN is not set');
  });

  it('fills in what torchrun-less starters leave out', () => {
    expect(readRankEnvironment({ RANK: '3', WORLD_SIZE: '4', MASTER_ADDR: 'h', MASTER_PORT: '1' })).toEqual({
      source: 'torchrun',
      description: 'rank 3 of 4 from RANK/WORLD_SIZE; store on h:1',
      nodeFromHostname: false,
      rank: 3,
      worldSize: 4,
      localRank: 3,
      localWorldSize: 4,
      node: 0,
      masterAddr: 'h',
      masterPort: 1,
      storeToken: undefined,
      storeHosted: false,
      keyPrefix: 'mics/default/0',
      agentLocalRank: 3,
      errorFile: undefined,
    });
  });
});

/** What Open MPI 4.1's mpirun exports to each rank (the subset that matters), as seen with `mpirun -np 4 env`. */
function openMpi(rank: number, size: number, localRank: number, localSize: number, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    OMPI_COMM_WORLD_RANK: String(rank),
    OMPI_COMM_WORLD_SIZE: String(size),
    OMPI_COMM_WORLD_LOCAL_RANK: String(localRank),
    OMPI_COMM_WORLD_LOCAL_SIZE: String(localSize),
    OMPI_COMM_WORLD_NODE_RANK: String(localRank),
    OMPI_MCA_ess_base_jobid: '348782593',
    PMIX_RANK: String(rank),
    ...extra,
  };
}

describe('readRankEnvironment() without torchrun variables: mpirun and srun', () => {
  it('Open MPI on one node: rank 0 hosts the store on 127.0.0.1, the port comes from the job id, nothing else is needed', () => {
    const place = readRankEnvironment(openMpi(2, 4, 2, 4));
    expect(place).toEqual({
      source: 'open-mpi',
      description:
        'rank 2 of 4 from Open MPI (OMPI_COMM_WORLD_*); rank 0 hosts the store on 127.0.0.1:17593 ' +
        '(address: every rank on one node; port: from job id 348782593)',
      rank: 2,
      worldSize: 4,
      localRank: 2,
      localWorldSize: 4,
      node: 0,
      nodeFromHostname: false,
      masterAddr: '127.0.0.1',
      masterPort: 17593,
      storeToken: undefined,
      storeHosted: false,
      keyPrefix: 'mics/348782593/0',
      agentLocalRank: 2,
      errorFile: undefined,
    });
    // Every rank of the job agrees on the rendezvous.
    for (let r = 0; r < 4; r += 1) expect(readRankEnvironment(openMpi(r, 4, r, 4))).toMatchObject({ masterAddr: '127.0.0.1', masterPort: 17593 });
  });

  it('Open MPI 5 (PRRTE): the PMIx namespace is the job id', () => {
    const env = openMpi(0, 2, 0, 2, { OMPI_MCA_ess_base_jobid: undefined, PMIX_NAMESPACE: 'prterun-vm-4242@1' });
    const place = readRankEnvironment(env);
    expect(place.masterPort).toBe(portFromJobId('prterun-vm-4242@1'));
    expect(place.keyPrefix).toBe('mics/prterun-vm-4242@1/0');
  });

  it('MASTER_ADDR, MASTER_PORT and MICS_STORE_TOKEN (mpirun -x) win over the derived values', () => {
    const place = readRankEnvironment(openMpi(1, 2, 1, 2, { MASTER_ADDR: '10.1.2.3', MASTER_PORT: '29600', MICS_STORE_TOKEN: 's3cret' }));
    expect(place).toMatchObject({ masterAddr: '10.1.2.3', masterPort: 29600, storeToken: 's3cret' });
    expect(place.description).toContain('(address: MASTER_ADDR; port: MASTER_PORT)');
  });

  it('Open MPI across nodes: nodes are told apart by host name; the address needs MASTER_ADDR or a Slurm node list', () => {
    expect(() => readRankEnvironment(openMpi(5, 8, 1, 4))).toThrow(
      'Open MPI (OMPI_COMM_WORLD_*): rank 5 of 8 spans several nodes and MASTER_ADDR is not set: export MASTER_ADDR=<host of rank 0>',
    );
    const place = readRankEnvironment(openMpi(5, 8, 1, 4, { MASTER_ADDR: 'node1' }));
    expect(place).toMatchObject({ localRank: 1, localWorldSize: 4, nodeFromHostname: true, masterAddr: 'node1', agentLocalRank: 1 });
    expect(place.description).toContain('nodes told apart by host name');
    // mpirun inside a Slurm allocation: the allocation's first host.
    expect(readRankEnvironment(openMpi(5, 8, 1, 4, { SLURM_JOB_NODELIST: 'gpu[07-08]', SLURM_PROCID: '0', SLURM_NTASKS: '1' }))).toMatchObject({
      source: 'open-mpi',
      masterAddr: 'gpu07',
      rank: 5,
      nodeFromHostname: true,
    });
  });

  it('Open MPI says when the job has one node even if the local size is not the world size', () => {
    expect(readRankEnvironment(openMpi(0, 2, 0, 1, { OMPI_MCA_orte_num_nodes: '1' }))).toMatchObject({ masterAddr: '127.0.0.1', node: 0, localWorldSize: 2 });
  });

  it('MPICH / Intel MPI (Hydra): PMI_RANK, PMI_SIZE, MPI_LOCALRANKID, MPI_LOCALNRANKS; no job id, so port 29500', () => {
    const env = { PMI_RANK: '3', PMI_SIZE: '4', MPI_LOCALRANKID: '3', MPI_LOCALNRANKS: '4', PMI_FD: '6' };
    expect(readRankEnvironment(env)).toMatchObject({
      source: 'pmi',
      rank: 3,
      worldSize: 4,
      localRank: 3,
      node: 0,
      masterAddr: '127.0.0.1',
      masterPort: 29500,
      keyPrefix: 'mics/default/0',
    });
    expect(readRankEnvironment(env).description).toContain('port: default');
    // Under srun --mpi=pmi2 the Slurm job id gives the port.
    expect(readRankEnvironment({ ...env, SLURM_JOB_ID: '81234' }).masterPort).toBe(16234);
  });

  it('Slurm srun: rank, size, local rank, node and tasks per node; first host of the step as the address', () => {
    const slurm = (procId: number, node: number, local: number): NodeJS.ProcessEnv => ({
      SLURM_PROCID: String(procId),
      SLURM_NTASKS: '6',
      SLURM_LOCALID: String(local),
      SLURM_NODEID: String(node),
      SLURM_NNODES: '2',
      SLURM_STEP_NUM_NODES: '2',
      SLURM_STEP_TASKS_PER_NODE: '4,2',
      SLURM_STEP_NODELIST: 'node[017-018]',
      SLURM_JOB_NODELIST: 'node[017-018,020]',
      SLURM_JOB_ID: '4711',
      SLURM_STEP_ID: '3',
    });
    expect(readRankEnvironment(slurm(5, 1, 1))).toEqual({
      source: 'slurm',
      description:
        'rank 5 of 6 from Slurm (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NODEID); rank 0 hosts the store on node017:15821 ' +
        '(address: first host of SLURM_STEP_NODELIST; port: from job id 4711.3)',
      rank: 5,
      worldSize: 6,
      localRank: 1,
      localWorldSize: 2,
      node: 1,
      nodeFromHostname: false,
      masterAddr: 'node017',
      masterPort: 15821,
      storeToken: undefined,
      storeHosted: false,
      keyPrefix: 'mics/4711.3/0',
      agentLocalRank: 1,
      errorFile: undefined,
    });
    expect(readRankEnvironment(slurm(2, 0, 2))).toMatchObject({ localWorldSize: 4, node: 0, masterAddr: 'node017', masterPort: 15821 });
    // One node: loopback, whatever the node list says.
    expect(readRankEnvironment({ SLURM_PROCID: '1', SLURM_NTASKS: '2', SLURM_LOCALID: '1', SLURM_NODEID: '0', SLURM_NNODES: '1', SLURM_JOB_ID: '9' })).toMatchObject({
      masterAddr: '127.0.0.1',
      masterPort: 15009,
      localWorldSize: 2,
    });
  });

  it('MPI variables beat the Slurm allocation they run in (mpirun inside sbatch inherits SLURM_PROCID=0)', () => {
    const place = readRankEnvironment(openMpi(3, 4, 3, 4, { SLURM_PROCID: '0', SLURM_NTASKS: '1', SLURM_JOB_ID: '77' }));
    expect(place).toMatchObject({ source: 'open-mpi', rank: 3, worldSize: 4 });
  });

  it('names a bad or missing variable of the starter and what is valid', () => {
    expect(() => readRankEnvironment({ OMPI_COMM_WORLD_RANK: '0' })).toThrow(
      'Open MPI (OMPI_COMM_WORLD_*): missing environment variable(s) OMPI_COMM_WORLD_SIZE (set by the starter on every rank)',
    );
    expect(() => readRankEnvironment(openMpi(4, 4, 0, 4))).toThrow('environment variable OMPI_COMM_WORLD_RANK=4 is not valid: use an integer in [0, 3]');
    expect(() => readRankEnvironment({ PMI_RANK: '0', PMI_SIZE: 'two' })).toThrow('environment variable PMI_SIZE=two is not valid: use an integer in [1, 1048576]');
    expect(() => readRankEnvironment(openMpi(0, 4, 0, 2, { MASTER_ADDR: 'h', MASTER_PORT: '70000' }))).toThrow(
      'environment variable MASTER_PORT=70000 is not valid: use an integer in [1, 65535]',
    );
    expect(() => readRankEnvironment({ PMI_RANK: '0', PMI_SIZE: '4', MASTER_ADDR: 'h' })).toThrow(
      'MPICH / Intel MPI (PMI_RANK, PMI_SIZE, MPI_LOCALRANKID, MPI_LOCALNRANKS): rank 0 of 4 but no local rank and size (MPI_LOCALRANKID, MPI_LOCALNRANKS)',
    );
  });

  it('a one-rank mpirun needs no rendezvous at all', () => {
    expect(readRankEnvironment({ OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '1' })).toMatchObject({ rank: 0, worldSize: 1, localWorldSize: 1, masterAddr: '127.0.0.1', masterPort: 29500 });
  });
});

describe('Slurm and job-id helpers', () => {
  it('firstSlurmHost() takes the first host of a compressed node list', () => {
    expect(firstSlurmHost('node[07-09,12],gpu5')).toBe('node07');
    expect(firstSlurmHost('gpu5,node[1-2]')).toBe('gpu5');
    expect(firstSlurmHost('rack[2-3]-n[001-004]')).toBe('rack2-n001');
    expect(firstSlurmHost('node[07-09')).toBeUndefined();
    expect(firstSlurmHost('')).toBeUndefined();
  });

  it('parseTasksPerNode() expands Slurm\'s repeat notation', () => {
    expect(parseTasksPerNode('4(x2),3')).toEqual([4, 4, 3]);
    expect(parseTasksPerNode('8')).toEqual([8]);
    expect(parseTasksPerNode('four')).toBeUndefined();
  });

  it('portFromJobId() is stable per job and stays in [15000, 25000)', () => {
    expect(portFromJobId('123456')).toBe(18456);
    const ports = ['a', 'prterun-x-1@1', 'prterun-x-2@1', '0'].map(portFromJobId);
    for (const p of ports) expect(p >= 15000 && p < 25000).toBe(true);
    expect(portFromJobId('prterun-x-1@1')).toBe(portFromJobId('prterun-x-1@1'));
    expect(new Set(ports).size).toBe(ports.length);
  });
});
