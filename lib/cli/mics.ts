#!/usr/bin/env node
/** The `mics` command: info, plan, simulate, bench. */
import { Command } from 'commander';
import { collectInfo, formatInfo } from './info';
import { packageVersion } from '../core/version';
import { addBenchCommands } from './bench/command';
import { addCheckpointCommands } from './checkpoint';
import { addPlanCommands } from './plan';
import { addSimulateCommand } from './simulate';

export function buildProgram(): Command {
  const program = new Command('mics')
    .description('MiCS sharded-training communication for Node.js')
    .version(packageVersion);

  program
    .command('info')
    .description('print the version, build variant and the backends usable on this machine')
    .option('--json', 'print machine-readable JSON')
    .action((options: { json?: boolean }) => {
      const report = collectInfo();
      process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatInfo(report)}\n`);
      if (report.problems.length > 0) process.exitCode = 1;
    });

  addPlanCommands(program);
  addSimulateCommand(program);
  addBenchCommands(program);
  addCheckpointCommands(program);

  return program;
}

if (require.main === module) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      process.stderr.write(`mics: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    });
}
