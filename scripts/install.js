#!/usr/bin/env node
/**
 * The package's `install` script: use the prebuilt addon when one matches this machine and
 * loads, else compile it from csrc/ with node-gyp, saying so first (what, why, what it needs).
 * Like `node-gyp-build` (which lib/core/native.ts uses to find the addon at run time), plus the
 * messages. npm shows an install script's output when it fails, or with --foreground-scripts.
 *
 * Note for npm 11+: npm runs a dependency's install script only when the project allows it
 * (`npm install-scripts approve mics`); with a matching prebuild nothing needs to run.
 */
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const say = (line) => process.stderr.write(`mics: ${line}\n`);

/** The file node-gyp-build would load from `root`, or undefined. */
function resolveAddon() {
  try {
    return require('node-gyp-build').resolve(root);
  } catch {
    return undefined;
  }
}

/** Loads `file` in a child process (a broken binary must not take this one down); the error text or ''. */
function loadError(file) {
  const r = spawnSync(process.execPath, ['-e', 'require(process.argv[1]).version()', file], { encoding: 'utf8' });
  return r.status === 0 ? '' : (r.stderr || `exit code ${r.status}`).trim().split('\n').filter((l) => /Error|error/.test(l))[0] || 'load failed';
}

/** npm's own node-gyp (npm exports its path to scripts), else one next to this package, else PATH's. */
function nodeGypCommand() {
  const candidates = [process.env.npm_config_node_gyp];
  try {
    candidates.push(require.resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // not installed next to us: npm's or PATH's
  }
  const file = candidates.find((f) => f && fs.existsSync(f));
  return file ? [process.execPath, file] : ['node-gyp'];
}

function main() {
  const fromSource = process.env.npm_config_build_from_source === 'true';
  const target = `${process.platform}-${process.arch}, Node ${process.version}`;
  let why = `no prebuilt addon for ${target} in prebuilds/`;
  if (fromSource) {
    why = '--build-from-source was given';
  } else {
    const file = resolveAddon();
    if (file !== undefined) {
      const error = loadError(file);
      if (error === '') {
        say(`using ${path.relative(root, file)} (${target}): nothing to compile`);
        return 0;
      }
      why = `${path.relative(root, file)} does not load here (${error})`;
    }
  }
  say(`${why}: compiling the addon from csrc/ with node-gyp`);
  say('this needs a C++17 compiler, make and python3, and takes 1-2 minutes on 2 cores');
  const [command, ...args] = nodeGypCommand();
  const r = spawnSync(command, [...args, 'rebuild'], { cwd: root, stdio: 'inherit' });
  if (r.status === 0) {
    say('built build/Release/mics.node');
    return 0;
  }
  say(
    `compiling failed (${r.error ? r.error.message : `node-gyp exit code ${r.status}`}): ` +
      'install g++ (or clang++), make and python3 (Debian/Ubuntu: apt-get install g++ make python3) and run `npm rebuild mics`',
  );
  return r.status || 1;
}

process.exitCode = main();
