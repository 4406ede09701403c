#!/usr/bin/env node
// What scripts/gpu-check.sh carries to a GPU machine without Node.js (the lent device
// machine): the builds (dist/, build-cmake/Release/mics.node, build/Release/mics.node) and node_modules limited
// to the production dependencies plus jest, ts-jest, typescript, the type packages (the GPU tests are
// .ts files) and tsx with everything they depend on. Prints one path per line, relative to the
// package root, directories first-level only (tar recurses); nested node_modules of a
// listed package are inside it. `--sizes` prints "bytes<TAB>path" instead.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
// ts-jest type-checks the tests: it needs the type packages too. tsx is an optional peer
// (not a dependency), which the tests that launch .ts scripts use.
const TEST_TOOLS = ['jest', 'ts-jest', 'typescript', '@types/jest', '@types/node', 'tsx'];

// Node's resolution of a package directory from `fromDir` (hoisted or nested).
function resolvePackage(name, fromDir) {
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', name);
    if (fs.existsSync(path.join(candidate, 'package.json'))) return candidate;
    if (path.dirname(dir) === dir) return undefined;
  }
}

function closure(names) {
  const seen = new Set();
  const missing = [];
  const visit = (dir) => {
    if (seen.has(dir)) return;
    seen.add(dir);
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
    const optional = pkg.optionalDependencies || {};
    for (const name of Object.keys({ ...pkg.dependencies, ...optional })) {
      const found = resolvePackage(name, dir);
      if (found) visit(found);
      else if (!(name in optional)) missing.push(`${name} (needed by ${path.relative(root, dir)})`);
    }
  };
  for (const name of names) {
    const found = resolvePackage(name, root);
    if (found) visit(found);
    else missing.push(`${name} (top level)`);
  }
  return { dirs: [...seen], missing };
}

function bytesOf(p) {
  const st = fs.lstatSync(p);
  if (!st.isDirectory()) return st.size;
  let total = 0;
  for (const e of fs.readdirSync(p)) total += bytesOf(path.join(p, e));
  return total;
}

const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const { dirs, missing } = closure([...Object.keys(pkg.dependencies || {}), ...TEST_TOOLS]);
// Keep a package's directory only when no listed ancestor already contains it.
const rel = dirs.map((d) => path.relative(root, d)).sort();
const top = rel.filter((d) => !rel.some((o) => o !== d && d.startsWith(`${o}${path.sep}`)));
// Both builds: the CUDA one under test, and the CPU one the no-device tests compare with.
const entries = ['dist', path.join('build-cmake', 'Release', 'mics.node'), path.join('build', 'Release', 'mics.node'), ...top];
const absent = entries.filter((e) => !fs.existsSync(path.join(root, e)));
if (missing.length > 0 || absent.length > 0) {
  for (const m of missing) process.stderr.write(`gpu-carry: dependency not installed: ${m} (run npm install)\n`);
  for (const a of absent) process.stderr.write(`gpu-carry: missing ${a} (${a === 'dist' ? 'npm run build:ts' : a.startsWith('build-cmake') ? 'npm run build:cmake' : a.startsWith('build') ? 'npm run build:native' : 'npm install'})\n`);
  process.exit(2);
}
const sizes = process.argv.includes('--sizes');
process.stdout.write(entries.map((e) => (sizes ? `${bytesOf(path.join(root, e))}\t${e}\n` : `${e}\n`)).join(''));
