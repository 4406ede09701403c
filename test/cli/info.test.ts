/** `mics info` tells the truth about this machine, for people and for scripts. */
import { runNode } from '../helpers/run-node';
import type { InfoReport } from '../../lib/cli/info';

describe('mics info', () => {
  it('--json parses and names every backend with a reason when unusable', () => {
    const result = runNode(['dist/cli/mics.js', 'info', '--json']);
    expect(result.status).toBe(0);
    const report = JSON.parse(result.stdout) as InfoReport;
    expect(report.packageVersion).toMatch(/^\d+\.\d+\.\d+/);
    expect(report.variant).toBe(report.build.cuda ? 'cuda' : 'cpu');
    const cpu = report.backends.find((b) => b.name === 'cpu');
    const nccl = report.backends.find((b) => b.name === 'nccl');
    expect(cpu?.usable).toBe(true);
    expect(nccl).toBeDefined();
    if (!report.capabilities.nccl.found) {
      expect(nccl?.usable).toBe(false);
      expect(nccl?.detail).toMatch(/libnccl\.so\.2 not found \(searched: libnccl\.so\.2, /);
    }
  });

  it('prints a human summary with one line per backend', () => {
    const result = runNode(['dist/cli/mics.js', 'info']);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^mics \d+\.\d+\.\d+/);
    expect(result.stdout).toMatch(/^ {2}cpu: yes/m);
    expect(result.stdout).toMatch(/^ {2}nccl: (yes|no) - /m);
  });

  it('reports the driver against the runtime, and exits 1 with MICS_REQUIRE_GPU=1 where the nccl backend is unusable', () => {
    const json = JSON.parse(runNode(['dist/cli/mics.js', 'info', '--json']).stdout) as InfoReport;
    expect(json.driver.status).toEqual(json.build.cuda ? expect.stringMatching(/^(ok|too-old|no-driver)$/) : 'no-cuda');
    const usable = json.backends.find((b) => b.name === 'nccl')?.usable;
    const required = runNode(['dist/cli/mics.js', 'info'], { MICS_REQUIRE_GPU: '1' });
    if (usable) {
      console.log('skipped the MICS_REQUIRE_GPU=1 failure case: the nccl backend is usable here');
      expect(required.status).toBe(json.problems.length > 0 ? 1 : 0);
      return;
    }
    expect(required.status).toBe(1);
    expect(required.stdout).toMatch(/^error: (MICS_REQUIRE_GPU=1 but the nccl backend is not usable: |CUDA driver too old: )/m);
    const requiredJson = JSON.parse(runNode(['dist/cli/mics.js', 'info', '--json'], { MICS_REQUIRE_GPU: '1' }).stdout) as InfoReport;
    expect(requiredJson.problems).toHaveLength(1);
  });

  it('names MICS_NCCL_LIBRARY first in the search when it is set', () => {
    const result = runNode(['dist/cli/mics.js', 'info', '--json'], { MICS_NCCL_LIBRARY: '/opt/nope/libnccl.so.2' });
    const report = JSON.parse(result.stdout) as InfoReport;
    expect(report.capabilities.nccl.searched[0]).toBe('/opt/nope/libnccl.so.2');
  });
});
