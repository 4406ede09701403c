/**
 * How a rank runs a TypeScript script. `tsx` is an optional peer dependency, not a runtime
 * one (it pulls esbuild into every install): when the user's project (or this package, in
 * development) has it, its loader runs the script; otherwise Node's own type stripping where
 * the Node version has it (22.6+ behind a flag, on by default from 22.18 / 23.6); otherwise a
 * usage error saying what to install.
 */
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { UsageError } from './launch/errors';

/** Extensions mics-launch treats as TypeScript. */
export const TS_EXTENSIONS: ReadonlySet<string> = new Set(['.ts', '.mts', '.cts', '.tsx']);

/** What decides how a .ts script runs; the defaults look at this process and the file system. */
export interface TypeScriptHost {
  /** The running Node's version, e.g. 'v22.18.0' (default process.version). */
  nodeVersion?: string;
  /** The tsx loader's file URL, or undefined when tsx cannot be resolved (default: {@link findTsxLoader}). */
  tsxLoader?: (script: string) => string | undefined;
}

/**
 * The tsx loader as a file URL, resolved from the script's directory, the working directory,
 * then this package (so a project that installed tsx, globally linked or not, is used).
 */
export function findTsxLoader(script: string): string | undefined {
  try {
    const pkg = require.resolve('tsx/package.json', { paths: [path.dirname(path.resolve(script)), process.cwd(), __dirname] });
    return pathToFileURL(path.join(path.dirname(pkg), 'dist', 'loader.mjs')).href;
  } catch {
    return undefined;
  }
}

/** Node's built-in type stripping for this version: on by default, behind a flag, or absent. */
export function nodeTypeStripping(version: string): 'default' | 'flag' | 'none' {
  const m = /^v?(\d+)\.(\d+)/.exec(version);
  if (!m) return 'none';
  const [major, minor] = [Number(m[1]), Number(m[2])];
  if (major > 23 || (major === 23 && minor >= 6) || (major === 22 && minor >= 18)) return 'default';
  if (major === 23 || (major === 22 && minor >= 6)) return 'flag';
  return 'none';
}

/** The node arguments that go before a TypeScript `script` (tsx's loader, Node's flag, or none). */
export function typeScriptNodeArgs(script: string, host: TypeScriptHost = {}): string[] {
  const loader = (host.tsxLoader ?? findTsxLoader)(script);
  if (loader !== undefined) return ['--import', loader];
  const version = host.nodeVersion ?? process.version;
  const stripping = nodeTypeStripping(version);
  const ext = path.extname(script).toLowerCase();
  if (stripping !== 'none' && ext !== '.tsx') return stripping === 'flag' ? ['--experimental-strip-types'] : [];
  const why =
    ext === '.tsx'
      ? "Node's type stripping does not take .tsx"
      : `Node ${version} cannot strip types itself (Node 22.18+ can, for erasable TypeScript)`;
  throw new UsageError(
    `'${script}' is TypeScript and tsx is not installed (${why}): run \`npm install --save-dev tsx\` in your project ` +
      '(mics-launch then runs .ts scripts with it), or compile the script to .js',
  );
}
