/** DeepSpeed hostfiles: parsing, clear errors, include/exclude/num-nodes/num-gpus. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseHostfile, readHostfile, selectHosts } from '../../../lib/cli/launch/hostfile';
import { UsageError } from '../../../lib/cli/launch/errors';
import { tempDir } from './harness';

const text = `
# training cluster
worker-0 slots=4
worker-1   slots = 4   # trailing comment

worker-2 slots=2
`;

describe('parseHostfile', () => {
  it('reads hosts and slots, skipping comments and blank lines', () => {
    expect(parseHostfile(text)).toEqual([
      { host: 'worker-0', slots: 4 },
      { host: 'worker-1', slots: 4 },
      { host: 'worker-2', slots: 2 },
    ]);
  });

  it('rejects a duplicate host, naming both lines', () => {
    expect(() => parseHostfile('a slots=1\nb slots=2\na slots=3\n', 'hf')).toThrow(
      new UsageError("hf line 3: host 'a' is already listed on line 1"),
    );
  });

  it.each([
    ['a', "line 1: expected 'hostname slots=N', got 'a'"],
    ['a slots=', "line 1: expected 'hostname slots=N', got 'a slots='"],
    ['a gpus=2', "expected 'hostname slots=N', got 'a gpus=2'"],
    ['a slots=2 extra', "expected 'hostname slots=N'"],
    ['a slots=0', "slots must be a positive integer, got '0' for host 'a'"],
    ['a slots=x', "slots must be a positive integer, got 'x'"],
    ['a slots=-1', "slots must be a positive integer, got '-1'"],
  ])('rejects the bad line %j', (line, message) => {
    expect(() => parseHostfile(`${line}\n`)).toThrow(message);
  });

  it('rejects a file with no hosts, and a missing file, clearly', () => {
    expect(() => parseHostfile('# nothing\n\n', 'hf')).toThrow('hf lists no hosts');
    expect(() => readHostfile('/nonexistent/hostfile')).toThrow("cannot read hostfile '/nonexistent/hostfile' (ENOENT)");
    const dir = tempDir('hf');
    const file = path.join(dir, 'hostfile');
    fs.writeFileSync(file, 'x slots=2\nx slots=2\n');
    expect(() => readHostfile(file)).toThrow(`hostfile ${file} line 2: host 'x' is already listed on line 1`);
  });
});

describe('selectHosts', () => {
  const hosts = parseHostfile(text);

  it('keeps every host and slot by default', () => {
    expect(selectHosts(hosts)).toEqual([
      { host: 'worker-0', slots: [0, 1, 2, 3] },
      { host: 'worker-1', slots: [0, 1, 2, 3] },
      { host: 'worker-2', slots: [0, 1] },
    ]);
  });

  it('--include takes hosts and slots, in hostfile order', () => {
    expect(selectHosts(hosts, { include: 'worker-2@worker-0:0,2' })).toEqual([
      { host: 'worker-0', slots: [0, 2] },
      { host: 'worker-2', slots: [0, 1] },
    ]);
  });

  it('--exclude drops whole hosts or single slots', () => {
    expect(selectHosts(hosts, { exclude: 'worker-1@worker-0:3' })).toEqual([
      { host: 'worker-0', slots: [0, 1, 2] },
      { host: 'worker-2', slots: [0, 1] },
    ]);
    expect(selectHosts(hosts, { exclude: 'worker-2:0,1' }).map((h) => h.host)).toEqual(['worker-0', 'worker-1']);
  });

  it('--num-nodes and --num-gpus take the first N', () => {
    expect(selectHosts(hosts, { numNodes: 2, numGpus: 1 })).toEqual([
      { host: 'worker-0', slots: [0] },
      { host: 'worker-1', slots: [0] },
    ]);
    expect(() => selectHosts(hosts, { numNodes: 4 })).toThrow('--num-nodes 4: only 3 host(s) are available');
  });

  it('reports bad filters with the value and what is valid', () => {
    expect(() => selectHosts(hosts, { include: 'a', exclude: 'b' })).toThrow('--include and --exclude cannot be used together');
    expect(() => selectHosts(hosts, { include: 'worker-9' })).toThrow(
      "--include 'worker-9': host 'worker-9' is not in the hostfile (hosts: worker-0, worker-1, worker-2)",
    );
    expect(() => selectHosts(hosts, { include: 'worker-2:5' })).toThrow("host 'worker-2' has slots 0..1, not 5");
    expect(() => selectHosts(hosts, { exclude: 'worker-0:x' })).toThrow("'worker-0:x' is not NAME or NAME:SLOT[,SLOT...]");
    expect(() => selectHosts(hosts, { include: 'worker-0@worker-0' })).toThrow("host 'worker-0' is named twice");
    expect(() => selectHosts(hosts, { exclude: 'worker-0@worker-1@worker-2' })).toThrow('leaves no host to run on');
  });
});
