/**
 * mics: MiCS sharded data-parallel training communication for Node.js.
 *
 * @packageDocumentation
 */
export { loadAddon, type BuildInfo, type Capabilities } from './native';
export { packageVersion } from './version';
