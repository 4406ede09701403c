/**
 * Loads TensorFlow.js for the adapter. `@tensorflow/tfjs` is an optional peer
 * dependency of mics: only `require('mics/tfjs')` loads it (never `require('mics')`),
 * and without it that require fails at once, saying what to install.
 */
import { MicsError } from '../../core/errors';

/** The TensorFlow.js module (the `tf` of `const tf = require('@tensorflow/tfjs')`). */
export type Tfjs = typeof import('@tensorflow/tfjs');

/** The package the adapter needs, as npm spells it. */
export const TFJS_PACKAGE = '@tensorflow/tfjs';

/** Requires `@tensorflow/tfjs`, or throws MICS_UNAVAILABLE saying how to install it. */
export function loadTfjs(): Tfjs {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(TFJS_PACKAGE) as Tfjs;
  } catch (err) {
    // only the package itself missing; a broken installation keeps its own error
    const missing = (err as { code?: unknown }).code === 'MODULE_NOT_FOUND' && (err as Error).message.startsWith(`Cannot find module '${TFJS_PACKAGE}'`);
    if (!missing) throw err;
    throw new MicsError(
      'mics/tfjs needs TensorFlow.js, which is not installed here: ' +
        `install it with 'npm install ${TFJS_PACKAGE}' (the pure-JS package; '@tensorflow/tfjs-backend-wasm' is optional and faster). ` +
        "require('mics') works without it.",
      'MICS_UNAVAILABLE',
      { op: "require('mics/tfjs')", cause: err },
    );
  }
}

/** TensorFlow.js, loaded once when the adapter is first required. */
export const tf: Tfjs = loadTfjs();
