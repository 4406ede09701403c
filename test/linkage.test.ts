/**
 * What the built addons need from the machine they run on: glibc 2.34 or older symbol
 * versions, and no libstdc++ (linked in statically), so that a build from this machine
 * (Debian 12, GCC 12) runs on GPU machines with older distributions. Reads the ELF
 * dynamic section and symbol versions with binutils (readelf, objdump).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { compareVersions, GLIBC_FLOOR } from '../lib/cuda/preflight';
import { repoRoot } from './helpers/run-node';

const builds = [path.join(repoRoot, 'build', 'Release', 'mics.node'), path.join(repoRoot, 'build-cmake', 'Release', 'mics.node')];
const tools = ['readelf', 'objdump'].every((t) => spawnSync(t, ['--version']).status === 0);
if (!tools) console.log('skipped the linkage checks: readelf/objdump (binutils) not found');

function elf(file: string): { needed: string[]; versions: string[] } {
  const dynamic = spawnSync('readelf', ['-d', file], { encoding: 'utf8' }).stdout;
  const symbols = spawnSync('objdump', ['-T', file], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout;
  return {
    needed: [...dynamic.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]),
    versions: [...new Set([...symbols.matchAll(/\b((?:GLIBC|GLIBCXX|CXXABI|GCC)_[0-9.]+)\b/g)].map((m) => m[1]))],
  };
}

describe('addon linkage', () => {
  for (const file of builds) {
    const name = path.relative(repoRoot, file);
    const present = tools && fs.existsSync(file);
    if (tools && !present) console.log(`skipped ${name}: not built`);
    (present ? it : it.skip)(`${name} needs no libstdc++ and no glibc newer than ${GLIBC_FLOOR}`, () => {
      const { needed, versions } = elf(file);
      expect(needed.filter((n) => /libstdc\+\+/.test(n))).toEqual([]);
      expect(needed).toEqual(expect.arrayContaining(['libc.so.6']));
      expect(versions.filter((v) => /^(GLIBCXX|CXXABI)_/.test(v))).toEqual([]);
      const glibc = versions.filter((v) => v.startsWith('GLIBC_')).map((v) => v.slice('GLIBC_'.length));
      expect(glibc.length).toBeGreaterThan(0);
      expect(glibc.filter((v) => compareVersions(v, GLIBC_FLOOR) > 0)).toEqual([]);
    });
  }
});
