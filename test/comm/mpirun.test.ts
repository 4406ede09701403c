/**
 * Start-up under a real `mpirun` (Debian's openmpi-bin): `mpirun -np 4 node train.js` on one
 * node needs nothing else: init() reads OMPI_COMM_WORLD_*, rank 0 hosts the store on 127.0.0.1
 * on a port derived from the job id, and the ranks all-reduce over shared memory. Skipped,
 * saying why, where no mpirun is installed (`apt-get install openmpi-bin` brings it).
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { repoRoot } from '../helpers/run-node';

function findMpirun(): string | undefined {
  const found = spawnSync('sh', ['-c', 'command -v mpirun'], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : undefined;
}

const mpirun = findMpirun();
const mpiIt = mpirun !== undefined ? it : it.skip;
if (mpirun === undefined) console.log('skipped the real mpirun test: no mpirun on PATH (apt-get install openmpi-bin)');

describe('mpirun -np 4 node script.js (Open MPI)', () => {
  mpiIt('forms the world from OMPI_COMM_WORLD_* alone and all-reduces across the 4 ranks', () => {
    // Drop every variable a surrounding launcher or test could have left, so only mpirun's count.
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (!/^(RANK|WORLD_SIZE|LOCAL_RANK|LOCAL_WORLD_SIZE|GROUP_RANK|MASTER_ADDR|MASTER_PORT|MICS_|SLURM_|PMI_|OMPI_|TORCHELASTIC_)/.test(k)) env[k] = v;
    }
    // Open MPI refuses root unless told (CI runs as root); --oversubscribe: 4 ranks on 2 cores.
    if (process.getuid?.() === 0) Object.assign(env, { OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' });
    const result = spawnSync(
      mpirun as string,
      ['-np', '4', '--oversubscribe', process.execPath, path.join(repoRoot, 'test', 'fixtures', 'comm', 'mpi-rank.js')],
      { cwd: repoRoot, env, encoding: 'utf8', timeout: 90000 },
    );
    const output = `${result.stdout}\n${result.stderr}`;
    expect({ status: result.status, output }).toMatchObject({ status: 0 });
    const results = result.stdout
      .split('\n')
      .filter((l) => l.startsWith('RESULT '))
      .map((l) => JSON.parse(l.slice('RESULT '.length)) as { rank: number; size: number; nodes: number[]; transport: string; sum: number[] });
    expect(results.map((r) => r.rank).sort()).toEqual([0, 1, 2, 3]);
    for (const r of results) {
      expect(r).toEqual({ rank: r.rank, size: 4, nodes: [0, 0, 0, 0], transport: 'shm', sum: [1 + 2 + 3 + 4, 4] });
    }
    // Rank 0 says where the ranks came from and where the rendezvous is, and warns about the token.
    expect(result.stderr).toMatch(/mics: rank 0 of 4 from Open MPI \(OMPI_COMM_WORLD_\*\); rank 0 hosts the store on 127\.0\.0\.1:\d+ \(address: every rank on one node; port: from job id \d+\)/);
    expect(result.stderr).toContain('MICS_STORE_TOKEN is not set');
  });
});
