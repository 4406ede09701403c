import { packageRoot } from './native';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The npm package version (from package.json). */
export const packageVersion: string = (
  JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string }
).version;
