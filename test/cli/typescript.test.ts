/**
 * How mics-launch runs a .ts script now that tsx is an optional peer dependency: tsx's loader
 * when it resolves, else Node's own type stripping where the version has it, else a usage
 * error that says what to install. (The installed-package test runs the last case for real,
 * in an app without tsx.)
 */
import * as path from 'node:path';
import { findTsxLoader, nodeTypeStripping, typeScriptNodeArgs } from '../../lib/cli/typescript';
import { UsageError } from '../../lib/cli/launch/errors';

const none = (): undefined => undefined;

describe('typeScriptNodeArgs()', () => {
  it("uses tsx's loader when tsx resolves, whatever Node can do itself", () => {
    expect(typeScriptNodeArgs('train.ts', { tsxLoader: () => 'file:///app/node_modules/tsx/dist/loader.mjs', nodeVersion: 'v24.0.0' })).toEqual([
      '--import',
      'file:///app/node_modules/tsx/dist/loader.mjs',
    ]);
  });

  it("falls back to Node's type stripping: on by default from 22.18 / 23.6, behind a flag from 22.6", () => {
    expect(typeScriptNodeArgs('train.ts', { tsxLoader: none, nodeVersion: 'v22.18.0' })).toEqual([]);
    expect(typeScriptNodeArgs('train.mts', { tsxLoader: none, nodeVersion: 'v24.1.0' })).toEqual([]);
    expect(typeScriptNodeArgs('train.ts', { tsxLoader: none, nodeVersion: 'v22.6.0' })).toEqual(['--experimental-strip-types']);
    expect(typeScriptNodeArgs('train.ts', { tsxLoader: none, nodeVersion: 'v23.5.0' })).toEqual(['--experimental-strip-types']);
  });

  it('without tsx on Node 20, or for .tsx, says what to install', () => {
    const run = (script: string, nodeVersion: string): unknown => {
      try {
        return typeScriptNodeArgs(script, { tsxLoader: none, nodeVersion });
      } catch (err) {
        return err;
      }
    };
    const old = run('train.ts', 'v20.19.0');
    expect(old).toBeInstanceOf(UsageError);
    expect((old as Error).message).toBe(
      "'train.ts' is TypeScript and tsx is not installed (Node v20.19.0 cannot strip types itself (Node 22.18+ can, for erasable TypeScript)): " +
        'run `npm install --save-dev tsx` in your project (mics-launch then runs .ts scripts with it), or compile the script to .js',
    );
    expect((run('App.tsx', 'v24.0.0') as Error).message).toContain("Node's type stripping does not take .tsx");
  });

  it('nodeTypeStripping() by version', () => {
    expect(['v20.20.2', 'v22.5.1', 'v22.6.0', 'v22.17.9', 'v22.18.0', 'v23.0.0', 'v23.6.0', 'v25.0.0', 'junk'].map(nodeTypeStripping)).toEqual([
      'none',
      'none',
      'flag',
      'flag',
      'default',
      'flag',
      'default',
      'default',
      'none',
    ]);
  });
});

describe('findTsxLoader()', () => {
  it("finds tsx's loader file (a dev dependency of this repository)", () => {
    const url = findTsxLoader(path.join(__dirname, 'script.ts'));
    expect(url).toMatch(/^file:\/\/.*\/node_modules\/tsx\/dist\/loader\.mjs$/);
  });
});
