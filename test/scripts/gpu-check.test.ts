/**
 * scripts/gpu-check.sh without a GPU: the carry list holds what the GPU run needs and
 * nothing of the build tools, a dry run packs it (node + payload, xz) and checks it fits
 * the 64 MiB carry limit, and `run` on a machine where the build cannot run stops after
 * the preflight with exit 3 and a report naming why. The GPU phases themselves run when a
 * GPU is lent (docs/cuda.md).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { repoRoot } from '../helpers/run-node';

const script = path.join(repoRoot, 'scripts', 'gpu-check.sh');
const cudaBuild = fs.existsSync(path.join(repoRoot, 'build-cmake', 'Release', 'mics.node'));
const cpuBuild = fs.existsSync(path.join(repoRoot, 'build', 'Release', 'mics.node'));
const hasXz = spawnSync('xz', ['--version']).status === 0;

function sh(args: string[], env: NodeJS.ProcessEnv = {}, timeout = 60000) {
  const r = spawnSync('bash', [script, ...args], { cwd: repoRoot, encoding: 'utf8', timeout, env: { ...process.env, ...env } });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('scripts/gpu-check.sh', () => {
  it('carries dist, both addons and the node_modules of the production dependencies and the test tools only', () => {
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'scripts', 'gpu-carry.js')], { cwd: repoRoot, encoding: 'utf8' });
    if (!cudaBuild || !cpuBuild) {
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/missing build(-cmake)?\/Release\/mics\.node \(npm run build:(cmake|native)\)/);
      console.log('skipped the full carry list: build both addons first (npm run build:native, npm run build:cmake)');
      return;
    }
    expect(r.status).toBe(0);
    const list = r.stdout.trim().split('\n');
    expect(list.slice(0, 3)).toEqual(['dist', 'build-cmake/Release/mics.node', 'build/Release/mics.node']);
    for (const need of ['commander', 'node-gyp-build', 'tsx', 'jest', 'ts-jest', 'typescript', '@types/jest', '@types/node', 'jest-circus']) {
      expect([need, list.includes(`node_modules/${need}`)]).toEqual([need, true]);
    }
    for (const unwanted of ['cmake-js', 'prebuildify', 'node-addon-api/../cmake-js']) expect(list).not.toContain(`node_modules/${unwanted}`);
    // No entry inside another (tar recurses).
    expect(list.filter((e) => list.some((o) => o !== e && e.startsWith(`${o}/`)))).toEqual([]);
  });

  (cudaBuild && cpuBuild && hasXz ? it : it.skip)('packs in a dry run, checks the payload, and fits the 64 MiB carry limit', () => {
    const r = sh(['pack', '--dry-run'], {}, 120000);
    expect({ code: r.code, missing: r.out.match(/MISSING.*|NOT NEEDED.*|OVER.*/g) }).toEqual({ code: 0, missing: null });
    const total = /total ([\d.]+) MiB of 64\.0 MiB: fits/.exec(r.out);
    expect(total).not.toBeNull();
    expect(Number(total?.[1])).toBeLessThanOrEqual(64);
    expect(r.out).toMatch(/node\.xz +\d+\.\d MiB/);
    expect(r.out).toMatch(/dry run: removed .*mics-gpu-carry\./);
    console.log(r.out.trim());
  }, 130000);

  it('stops after the preflight where the build cannot run, with exit 3 and a report naming why', () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'mics-gpu-report-'));
    try {
      const probe = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8' });
      if (probe.status === 0 && /GPU \d+:/.test(probe.stdout)) {
        console.log('skipped: this machine has a GPU (run the whole check with scripts/gpu-check.sh run)');
        return;
      }
      const r = sh(['run', out], { MICS_NCCL_LIBRARY: '/nonexistent/libnccl.so.2' });
      expect(r.code).toBe(cudaBuild ? 3 : 2);
      const report = fs.readFileSync(path.join(out, 'gpu-report.md'), 'utf8');
      if (!cudaBuild) {
        expect(report).toMatch(/Stopped: no build-cmake\/Release\/mics\.node/);
        return;
      }
      expect(report).toMatch(/^## Preflight$/m);
      expect(report).toMatch(/^- BLOCKER: no GPU: /m);
      expect(report).toMatch(/^- BLOCKER: NCCL not found: .*nonexistent/m);
      expect(report).toMatch(/Stopped after the preflight \(exit 3\)/);
      for (const f of ['preflight.json', 'preflight.md', 'mics-info.json', 'ldd.txt']) expect([f, fs.existsSync(path.join(out, f))]).toEqual([f, true]);
      expect(JSON.parse(fs.readFileSync(path.join(out, 'preflight.json'), 'utf8')).verdict.ok).toBe(false);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });

  it('refuses an unknown mode', () => {
    const r = sh(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/usage: scripts\/gpu-check\.sh pack \[--dry-run\] \[DIR\] \| run \[OUTDIR\]/);
  });
});
