/**
 * The two build files agree: binding.gyp (node-gyp: `npm install`, the prebuilds) and
 * CMakeLists.txt (cmake-js: `npm run build:cmake`, with the CUDA parts) compile the same C++
 * sources, and CMake's CUDA-only list (MICS_CUDA_SOURCES) holds the rest. A new .cc or .cu in
 * csrc/ must be added to both lists (or to the CUDA-only one), or this fails naming it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from '../helpers/run-node';

/** Every "sources" array of binding.gyp (targets and conditions alike). */
function gypSources(): string[] {
  // binding.gyp is a Python literal; ours is also JSON once '#' comments are gone.
  const text = fs.readFileSync(path.join(repoRoot, 'binding.gyp'), 'utf8').replace(/^\s*#.*$/gm, '');
  const out: string[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node !== null && typeof node === 'object') {
      for (const [key, value] of Object.entries(node)) {
        if (key === 'sources' && Array.isArray(value)) out.push(...(value as string[]));
        else walk(value);
      }
    }
  };
  walk(JSON.parse(text));
  return out;
}

/** The files of one `set(NAME ...)` list of CMakeLists.txt. */
function cmakeList(name: string): string[] {
  const text = fs.readFileSync(path.join(repoRoot, 'CMakeLists.txt'), 'utf8');
  const m = new RegExp(`set\\(${name}\\s([^)]*)\\)`).exec(text);
  if (!m) throw new Error(`CMakeLists.txt has no set(${name} ...)`);
  return m[1]
    .split('\n')
    .map((l) => l.replace(/#.*$/, '').trim())
    .filter((l) => l !== '');
}

/** Every .cc and .cu under csrc/, as repository paths. */
function csrcFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(path.join(repoRoot, dir), { withFileTypes: true })) {
      const rel = `${dir}/${entry.name}`;
      if (entry.isDirectory()) walk(rel);
      else if (/\.(cc|cu)$/.test(entry.name)) out.push(rel);
    }
  };
  walk('csrc');
  return out.sort();
}

const duplicates = (list: string[]): string[] => list.filter((f, i) => list.indexOf(f) !== i);
const missingFrom = (list: string[], from: string[]): string[] => list.filter((f) => !from.includes(f));

describe('binding.gyp and CMakeLists.txt', () => {
  const gyp = gypSources();
  const cmake = cmakeList('MICS_SOURCES');
  const cudaOnly = cmakeList('MICS_CUDA_SOURCES');

  it('list the same sources, each once', () => {
    expect(gyp.length).toBeGreaterThan(0);
    expect({ duplicatesInGyp: duplicates(gyp), duplicatesInCmake: duplicates(cmake) }).toEqual({ duplicatesInGyp: [], duplicatesInCmake: [] });
    expect({ onlyInBindingGyp: missingFrom(gyp, cmake), onlyInCMakeLists: missingFrom(cmake, gyp) }).toEqual({
      onlyInBindingGyp: [],
      onlyInCMakeLists: [],
    });
  });

  it("keep CMake's CUDA-only sources out of the node-gyp build", () => {
    expect(cudaOnly.filter((f) => gyp.includes(f) || cmake.includes(f))).toEqual([]);
  });

  it('list every .cc and .cu of csrc/, and only files that exist', () => {
    const listed = [...cmake, ...cudaOnly];
    expect({ notInAnyBuildFile: missingFrom(csrcFiles(), listed), listedButMissing: listed.filter((f) => !fs.existsSync(path.join(repoRoot, f))) }).toEqual({
      notInAnyBuildFile: [],
      listedButMissing: [],
    });
  });
});
