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

  it('names MICS_NCCL_LIBRARY first in the search when it is set', () => {
    const result = runNode(['dist/cli/mics.js', 'info', '--json'], { MICS_NCCL_LIBRARY: '/opt/nope/libnccl.so.2' });
    const report = JSON.parse(result.stdout) as InfoReport;
    expect(report.capabilities.nccl.searched[0]).toBe('/opt/nope/libnccl.so.2');
  });
});
