/**
 * The rank environment contract, both directions: rankEnvironment() writes what every starter
 * of ranks exports (mics-launch, the benchmarks' local ranks, the tests' helpers) and
 * readRankEnvironment() reads it back in init(): a round trip, plus what the reader does with
 * missing and bad values.
 */
import { readRankEnvironment, rankEnvironment, type RankLaunch } from '../../lib/comm/environment';

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
    expect(() => readRankEnvironment({})).toThrow(/missing environment variable\(s\) RANK, WORLD_SIZE: start ranks with mics-launch/);
    expect(() => readRankEnvironment({ RANK: '2', WORLD_SIZE: '2' })).toThrow('environment variable RANK=2 is not valid: use an integer in [0, 1]');
    expect(() => readRankEnvironment({ RANK: '0', WORLD_SIZE: '2' })).toThrow('missing environment variable(s) MASTER_ADDR, MASTER_PORT');
    const env = rankEnvironment(launch);
    expect(() => readRankEnvironment({ ...env, MICS_AGENT_LOCAL_RANK: '-1' })).toThrow(
      'environment variable MICS_AGENT_LOCAL_RANK=-1 is not valid: use an integer >= 0',
    );
    expect(() => readRankEnvironment({ ...env, MICS_STORE_TOKEN: '' })).toThrow('MICS_STORE_HOSTED=1 but MICS_STORE_TOKEN is not set');
  });

  it('fills in what torchrun-less starters leave out', () => {
    expect(readRankEnvironment({ RANK: '3', WORLD_SIZE: '4', MASTER_ADDR: 'h', MASTER_PORT: '1' })).toEqual({
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
