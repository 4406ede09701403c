/**
 * The environment a hostfile start carries to every node's agent (and so to every rank): the
 * launcher's own environment minus variables that describe this machine or this login session,
 * narrowed by --env-allow / --env-deny, plus the lines of an env file (DeepSpeed's
 * `.deepspeed_env`, here `.mics_env`) for values that must reach the remote hosts.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TOKEN_ENV } from './environment';
import { UsageError } from './errors';
import { OPTION_ENV } from './option-env';
import { ERROR_FILE_ENV } from '../../comm/environment';

/**
 * Never carried: what names this host, user or terminal session (the remote login sets its own),
 * per-host scheduler variables, npm's invocation variables, and the launcher's own settings (they travel as options, the
 * token on its own channel). A pattern ending in `*` matches a prefix.
 */
export const DEFAULT_ENV_DENY: readonly string[] = [
  'HOSTNAME', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'PWD', 'OLDPWD', 'SHLVL', '_',
  'TERM', 'TERMCAP', 'COLORTERM', 'DISPLAY', 'XAUTHORITY', 'MAIL', 'TMUX', 'TMUX_PANE', 'STY', 'WINDOW', 'LS_COLORS',
  'SSH_*', 'XDG_*', 'DBUS_SESSION_BUS_ADDRESS',
  'SLURM_*', 'PMI_*', 'PMIX_*', 'OMPI_*',
  // npm/npx describe how this launcher was invoked here, not the job.
  'npm_*', 'INIT_CWD',
];

/** The launcher's own variables: never carried (options travel on the command line, the token on standard input). */
function launcherVariables(): Set<string> {
  return new Set<string>([...Object.values(OPTION_ENV), TOKEN_ENV, ERROR_FILE_ENV, 'MICS_ENV_ALLOW', 'MICS_ENV_DENY', 'MICS_ENV_FILE']);
}

/** Checks and splits a comma-separated list of names and `PREFIX*` patterns. */
export function parseEnvPatterns(value: string, from: string): string[] {
  const parts = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (parts.length === 0) throw new UsageError(`invalid ${from} '${value}': expected variable names or PREFIX* patterns, comma-separated`);
  for (const p of parts) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*\*?$|^\*$/.test(p)) {
      throw new UsageError(`invalid ${from} '${value}': '${p}' is not a variable name or a PREFIX* pattern`);
    }
  }
  return parts;
}

/** Whether `name` matches one of `patterns` (exact names, or `PREFIX*`). */
export function matchesAny(name: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => (p.endsWith('*') ? name.startsWith(p.slice(0, -1)) : name === p));
}

/** One variable of an env file, with where it came from (for messages). */
export interface EnvFileEntry {
  readonly name: string;
  readonly value: string;
  readonly file: string;
}

/**
 * Parses env-file text: `NAME=VALUE` per line (the value is taken literally, up to the end of
 * the line), `#` comment lines and blank lines skipped; anything else is a {@link UsageError}
 * naming the file and line.
 */
export function parseEnvFile(text: string, file: string): EnvFileEntry[] {
  const out: EnvFileEntry[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) throw new UsageError(`env file ${file} line ${i + 1}: expected NAME=VALUE, got '${line}'`);
    out.push({ name: m[1], value: m[2], file });
  });
  return out;
}

/**
 * The env files to read: `explicit` (--env-file / MICS_ENV_FILE) alone when given (it must
 * exist), else `~/.mics_env` then `./.mics_env` where they exist (the working directory's wins,
 * as DeepSpeed reads `.deepspeed_env`).
 */
export function envFilePaths(explicit: string | undefined, cwd: string, home: string = os.homedir()): string[] {
  if (explicit !== undefined) {
    const file = path.resolve(cwd, explicit);
    if (!fs.existsSync(file)) throw new UsageError(`env file '${explicit}' not found (looked for ${file})`);
    return [file];
  }
  const candidates = [path.join(home, '.mics_env'), path.join(cwd, '.mics_env')];
  return [...new Set(candidates)].filter((f) => fs.existsSync(f));
}

/** Reads the env files in order (later files override earlier ones). */
export function readEnvFiles(files: readonly string[]): EnvFileEntry[] {
  const out: EnvFileEntry[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      const code = (err as { code?: unknown } | null)?.code;
      throw new UsageError(`cannot read env file '${file}' (${typeof code === 'string' ? code : String(err)})`);
    }
    out.push(...parseEnvFile(text, file));
  }
  return out;
}

/** How the carried environment is chosen. */
export interface CarryRules {
  /** Only variables matching these are carried from the launcher's environment (undefined: all). */
  readonly allow: readonly string[] | undefined;
  /** Never carried, in addition to {@link DEFAULT_ENV_DENY}. */
  readonly deny: readonly string[];
  /** Env-file entries: always carried, overriding the launcher's values. */
  readonly fileEntries: readonly EnvFileEntry[];
}

/**
 * The variables every remote agent gets, sorted by name. The launcher's variables pass when
 * allowed and not denied; the env file's entries are added last and win.
 */
export function carriedEnvironment(env: NodeJS.ProcessEnv, rules: CarryRules): Record<string, string> {
  const own = launcherVariables();
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined || own.has(k)) continue;
    if (matchesAny(k, DEFAULT_ENV_DENY) || matchesAny(k, rules.deny)) continue;
    if (rules.allow !== undefined && !matchesAny(k, rules.allow)) continue;
    out[k] = v;
  }
  for (const e of rules.fileEntries) {
    if (own.has(e.name)) {
      throw new UsageError(`env file ${e.file}: ${e.name} is the launcher's own setting; give it as an option instead`);
    }
    out[e.name] = e.value;
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
