/**
 * What a --hostfile start carries to the nodes: the launcher's environment minus what names this
 * machine or session and the launcher's own settings, narrowed by --env-allow / --env-deny, plus
 * the env file's NAME=VALUE lines (which win).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UsageError } from '../../../lib/cli/launch/errors';
import { carriedEnvironment, envFilePaths, matchesAny, parseEnvFile, parseEnvPatterns, readEnvFiles } from '../../../lib/cli/launch/remote-env';
import { tempDir } from './harness';

const none = { allow: undefined, deny: [], fileEntries: [] };

describe('carriedEnvironment()', () => {
  const env = {
    FOO: '1',
    OMP_NUM_THREADS: '4',
    CUDA_VISIBLE_DEVICES: '2,3',
    PATH: '/opt/node/bin:/usr/bin',
    LD_LIBRARY_PATH: '/opt/efa/lib',
    NCCL_DEBUG: 'INFO',
    HOME: '/home/me',
    HOSTNAME: 'login1',
    SSH_AUTH_SOCK: '/tmp/agent',
    SLURM_PROCID: '0',
    npm_config_cache: '/x',
    MICS_STORE_TOKEN: 'secret',
    MICS_NNODES: '4',
    MICS_NCCL_LIBRARY: '/opt/nccl/libnccl.so.2',
    UNSET: undefined,
  };

  it("carries everything but this host's and session's variables and the launcher's own settings, sorted", () => {
    expect(carriedEnvironment(env, none)).toEqual({
      CUDA_VISIBLE_DEVICES: '2,3',
      FOO: '1',
      LD_LIBRARY_PATH: '/opt/efa/lib',
      MICS_NCCL_LIBRARY: '/opt/nccl/libnccl.so.2',
      NCCL_DEBUG: 'INFO',
      OMP_NUM_THREADS: '4',
      PATH: '/opt/node/bin:/usr/bin',
    });
    expect(Object.keys(carriedEnvironment(env, none))).toEqual(Object.keys(carriedEnvironment(env, none)).sort());
  });

  it('--env-allow keeps only matching variables, --env-deny drops them; the built-in list still applies', () => {
    expect(carriedEnvironment(env, { ...none, allow: ['NCCL_*', 'FOO', 'HOME'] })).toEqual({ FOO: '1', NCCL_DEBUG: 'INFO' });
    expect(Object.keys(carriedEnvironment(env, { ...none, deny: ['PATH', 'LD_*', 'MICS_*'] }))).toEqual([
      'CUDA_VISIBLE_DEVICES',
      'FOO',
      'NCCL_DEBUG',
      'OMP_NUM_THREADS',
    ]);
  });

  it("the env file's entries are always carried and win over the launcher's values", () => {
    const fileEntries = [
      { name: 'FOO', value: 'from-file', file: 'f' },
      { name: 'HOME', value: '/shared/home', file: 'f' },
    ];
    const out = carriedEnvironment(env, { allow: ['NCCL_*'], deny: ['FOO'], fileEntries });
    expect(out).toEqual({ FOO: 'from-file', HOME: '/shared/home', NCCL_DEBUG: 'INFO' });
  });

  it("refuses an env file that sets the launcher's own settings (they are options)", () => {
    const fileEntries = [{ name: 'MICS_STORE_TOKEN', value: 'x', file: '/a/.mics_env' }];
    expect(() => carriedEnvironment(env, { ...none, fileEntries })).toThrow(
      new UsageError("env file /a/.mics_env: MICS_STORE_TOKEN is the launcher's own setting; give it as an option instead"),
    );
  });
});

describe('patterns', () => {
  it('are names or PREFIX*, comma-separated; anything else is refused naming the option', () => {
    expect(parseEnvPatterns(' NCCL_* ,FOO,', '--env-allow')).toEqual(['NCCL_*', 'FOO']);
    expect(() => parseEnvPatterns('FOO,a-b', '--env-deny')).toThrow(
      new UsageError("invalid --env-deny 'FOO,a-b': 'a-b' is not a variable name or a PREFIX* pattern"),
    );
    expect(() => parseEnvPatterns(',', 'MICS_ENV_ALLOW')).toThrow(/invalid MICS_ENV_ALLOW ',': expected variable names/);
    expect(matchesAny('NCCL_IB_HCA', ['NCCL_*'])).toBe(true);
    expect(matchesAny('NCCL', ['NCCL_*'])).toBe(false);
  });
});

describe('env files', () => {
  it('are NAME=VALUE lines taken literally; comments, blank lines and a leading export are allowed', () => {
    const text = '# cluster settings\n\nFI_PROVIDER=efa\nexport LD_LIBRARY_PATH=/opt/efa/lib:$LD_LIBRARY_PATH\nMSG=a = b # not a comment\n';
    expect(parseEnvFile(text, 'f').map((e) => [e.name, e.value])).toEqual([
      ['FI_PROVIDER', 'efa'],
      ['LD_LIBRARY_PATH', '/opt/efa/lib:$LD_LIBRARY_PATH'],
      ['MSG', 'a = b # not a comment'],
    ]);
  });

  it('a bad line is an error naming the file and line', () => {
    expect(() => parseEnvFile('A=1\nnot a setting\n', '/p/.mics_env')).toThrow(
      new UsageError("env file /p/.mics_env line 2: expected NAME=VALUE, got 'not a setting'"),
    );
  });

  it('are ~/.mics_env then ./.mics_env (the working directory wins), or only the one given, which must exist', () => {
    const home = tempDir('envhome');
    const cwd = tempDir('envcwd');
    expect(envFilePaths(undefined, cwd, home)).toEqual([]);
    fs.writeFileSync(path.join(home, '.mics_env'), 'A=home\nB=home\n');
    fs.writeFileSync(path.join(cwd, '.mics_env'), 'B=cwd\n');
    const files = envFilePaths(undefined, cwd, home);
    expect(files).toEqual([path.join(home, '.mics_env'), path.join(cwd, '.mics_env')]);
    const merged = carriedEnvironment({}, { ...none, fileEntries: readEnvFiles(files) });
    expect(merged).toEqual({ A: 'home', B: 'cwd' });
    expect(envFilePaths('.mics_env', cwd, home)).toEqual([path.join(cwd, '.mics_env')]);
    expect(() => envFilePaths('missing.env', cwd, home)).toThrow(`env file 'missing.env' not found (looked for ${path.join(cwd, 'missing.env')})`);
  });
});
