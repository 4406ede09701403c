/**
 * Checkpoints of the engine on DeviceTensors (nccl backend, one rank): a save and a
 * load on the device continue training bit for bit, and a CPU engine loads the same
 * checkpoint to the same bits. Needs the CMake build with CUDA, a device and NCCL;
 * elsewhere skipped with the reason printed (scripts/gpu-check.sh runs it on a GPU
 * machine).
 */
import { spawnSync } from 'node:child_process';
import { gpuTest } from '../helpers/require-gpu';
import { repoRoot } from '../helpers/run-node';
import { killAllRanks } from '../helpers/ranks';
import { expectAllOk, expectBitIdentical, readStates, removeTemporaryDirectories, temporaryDirectory, trainRun } from '../helpers/checkpoints';

const probe = spawnSync(
  process.execPath,
  ['-e', "const {backendStatuses}=require('./dist/cli/info'); const {loadAddon}=require('./dist/core/native'); console.log(JSON.stringify(backendStatuses(loadAddon().addon.capabilities()).find(b=>b.name==='nccl')))"],
  { cwd: repoRoot, encoding: 'utf8' },
);
const nccl = JSON.parse(probe.stdout || '{"usable":false,"detail":"probe failed"}') as { usable: boolean; detail: string };
const gpuIt = gpuTest(nccl.usable, nccl.detail, 'the checkpoint GPU test'); // fails under MICS_REQUIRE_GPU=1

afterAll(() => {
  killAllRanks();
  removeTemporaryDirectories();
});

describe('checkpoints of the engine on DeviceTensors (nccl, one rank)', () => {
  gpuIt('save on the device, load on the device: the same training; a CPU engine loads the same bits', async () => {
    const base = { W: 1, S: 1, A: 2, B: 4, steps: 4, seed: 7, optimizer: { type: 'adamw', lr: 0.02 }, extra: 1000 };
    const dir = temporaryDirectory();
    const first = await trainRun({ ...base, backend: 'nccl', checkpoint: { dir, saveAt: [2, 4] } });
    expectAllOk(first);
    const resumed = await trainRun({ ...base, backend: 'nccl', resume: { dir, tag: 'step-00000002' } });
    expectAllOk(resumed);
    expect(resumed[0].json.digest).toEqual(first[0].json.digest);
    const onCpu = temporaryDirectory();
    const cpu = await trainRun({ ...base, steps: 2, resume: { dir, tag: 'step-00000002' }, resave: { dir: onCpu } });
    expectAllOk(cpu);
    expectBitIdentical(await readStates(onCpu, 'step-00000002'), await readStates(dir, 'step-00000002'));
  }, 150000);
});
