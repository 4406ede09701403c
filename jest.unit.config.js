/**
 * `npm run test:unit`: the fast inner loop. Only the test files that start no process (no
 * ranks, launcher, CLI or npm runs), in parallel on every core. `npm test` (jest.config.js)
 * still runs everything; this list is found, not kept: a file that imports child_process or
 * a helper that starts processes is left to the full suite.
 */
const fs = require('node:fs');
const path = require('node:path');
const base = require('./jest.config');

const STARTS_PROCESSES = /child_process|runNode\(|helpers\/ranks|launch\/harness|from '\.\/harness'/;

function testFiles(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) return testFiles(file);
    return entry.name.endsWith('.test.ts') ? [file] : [];
  });
}

const inProcess = testFiles(path.join(__dirname, 'test')).filter((file) => !STARTS_PROCESSES.test(fs.readFileSync(file, 'utf8')));

/** @type {import('jest').Config} */
module.exports = {
  ...base,
  testMatch: inProcess,
  // Transpile only (types are checked by `npm run typecheck` and the full suite): several times faster.
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.unit.json' }] },
  maxWorkers: '100%',
  testTimeout: 30000,
};
