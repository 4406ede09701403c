/** The command line each rank runs: node for .js, node with the tsx loader for .ts, or an executable. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { UsageError } from './errors';

/** Program and arguments of a rank. */
export interface WorkerCommand {
  readonly command: string;
  readonly args: readonly string[];
}

const TS_EXTENSIONS = new Set(['.ts', '.mts', '.cts', '.tsx']);

/**
 * The tsx loader as a file URL: resolved from this package, so a user project without tsx can
 * still run .ts scripts (`--import tsx` would resolve from the script's directory instead).
 */
export function tsxLoaderUrl(): string {
  const pkg = require.resolve('tsx/package.json');
  return pathToFileURL(path.join(path.dirname(pkg), 'dist', 'loader.mjs')).href;
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
    return { command: process.execPath, args: ['--import', tsxLoaderUrl(), script, ...scriptArgs] };
  }
  return { command: process.execPath, args: [script, ...scriptArgs] };
}

/** Quotes a word for a POSIX shell when it needs it (for printed and ssh command lines). */
export function shellQuote(word: string): string {
  if (word !== '' && /^[A-Za-z0-9_\/.:=,@%+-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}
