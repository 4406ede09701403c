/**
 * jest globalSetup / globalTeardown: every test run gets its own temporary directory (TMPDIR,
 * which os.tmpdir() and the processes the tests start read), removed at the end, so a run
 * leaves nothing in the system's temporary directory even when a test or a launcher it
 * starts forgets to clean up. What was left in it is listed, so leaks are still found.
 */
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

async function setup() {
  const outer = os.tmpdir();
  const dir = fs.mkdtempSync(path.join(outer, 'mics-jest-'));
  // Kept on globalThis (globalSetup and globalTeardown share it), not in the environment:
  // launchers forward MICS_* variables, and tests compare the commands they print.
  globalThis.__micsTestTmp = { outer, dir, previous: process.env.TMPDIR };
  process.env.TMPDIR = dir;
}

async function teardown() {
  const state = globalThis.__micsTestTmp;
  if (!state) return;
  const { dir } = state;
  let left = [];
  try {
    left = fs.readdirSync(dir);
  } catch {
    return;
  }
  // tsx keeps its compile cache there on purpose (tsx-<uid>): not a leak.
  const leaked = left.filter((name) => !/^tsx-\d+$/.test(name));
  if (leaked.length > 0) {
    process.stderr.write(`temporary files the tests left behind (removed now): ${leaked.sort().join(', ')}\n`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  if (state.previous === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = state.previous;
}

module.exports = { setup, teardown };
