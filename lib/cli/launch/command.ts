/** The command line each rank runs: node for .js, node with tsx's loader (or Node's type stripping) for .ts, or an executable. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UsageError } from './errors';
import { TS_EXTENSIONS, typeScriptNodeArgs } from '../typescript';

/** Program and arguments of a rank. */
export interface WorkerCommand {
  readonly command: string;
  readonly args: readonly string[];
}

/**
 * Builds the rank's command. With node, the script must exist (a clear error now beats N copies
 * of node's stack trace); an executable (--no-node) is looked up by the system at start.
 */
export function workerCommand(script: string, scriptArgs: readonly string[], runWithNode: boolean): WorkerCommand {
  if (!runWithNode) return { command: script, args: [...scriptArgs] };
  let stat: fs.Stats;
  try {
    stat = fs.statSync(script);
  } catch {
    throw new UsageError(`script '${script}' not found (looked in ${process.cwd()}); with --no-node an executable on PATH is run instead`);
  }
  if (!stat.isFile()) throw new UsageError(`script '${script}' is not a file`);
  if (TS_EXTENSIONS.has(path.extname(script).toLowerCase())) {
    return { command: process.execPath, args: [...typeScriptNodeArgs(script), script, ...scriptArgs] };
  }
  return { command: process.execPath, args: [script, ...scriptArgs] };
}

/** Quotes a word for a POSIX shell when it needs it (for printed and ssh command lines). */
export function shellQuote(word: string): string {
  if (word !== '' && /^[A-Za-z0-9_\/.:=,@%+-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}
