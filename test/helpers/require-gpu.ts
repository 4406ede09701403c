/**
 * GPU-gated tests. Where the CUDA build, a driver, a GPU or NCCL is missing, a GPU test
 * is skipped with the reason printed, so `npm test` passes on any machine. With
 * MICS_REQUIRE_GPU=1 (set by the GPU workflow and scripts/gpu-check.sh) it fails with
 * that reason instead: a GPU run whose GPU tests all skipped cannot pass.
 */
import { spawnSync } from 'node:child_process';
import { repoRoot } from './run-node';

/** Whether MICS_REQUIRE_GPU=1 is set (skips for want of a GPU become failures). */
export function gpuRequired(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.MICS_REQUIRE_GPU === '1';
}

/**
 * `it` when `available`; else `it.skip` (printing `what` and `reason` once), or, with
 * MICS_REQUIRE_GPU=1, an `it` whose tests (`.each` ones too) fail naming `reason`.
 */
export function gpuTest(available: boolean, reason: string, what: string, env: NodeJS.ProcessEnv = process.env): jest.It {
  if (available) return it;
  if (!gpuRequired(env)) {
    console.log(`skipped ${what}: ${reason}`);
    return it.skip;
  }
  const fail = (): never => {
    throw new Error(`MICS_REQUIRE_GPU=1 but ${what} cannot run here: ${reason}`);
  };
  const failing = (name: string): void => it(name, fail);
  const each = (table: readonly unknown[]) => (name: string) => it.each(table as unknown[][])(name, fail);
  return Object.assign(failing, { each, only: failing, skip: it.skip, todo: it.todo, concurrent: failing, failing }) as unknown as jest.It;
}

/** The nccl backend's status as the compiled loader sees it (in a child process, with dist/). */
export function ncclStatus(): { usable: boolean; detail: string } {
  const probe = spawnSync(
    process.execPath,
    ['-e', "const {backendStatuses}=require('./dist/cli/info'); const {loadAddon}=require('./dist/core/native'); console.log(JSON.stringify(backendStatuses(loadAddon().addon.capabilities()).find(b=>b.name==='nccl')))"],
    { cwd: repoRoot, encoding: 'utf8' },
  );
  try {
    return JSON.parse(probe.stdout) as { usable: boolean; detail: string };
  } catch {
    return { usable: false, detail: `the capability probe failed: ${probe.stderr.trim() || `exit ${String(probe.status)}`}` };
  }
}
