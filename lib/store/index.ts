/**
 * The rendezvous store: a token-authenticated TCP key-value store (what torch's
 * TCPStore offers) that the launcher hosts and every rank connects to. See docs/store.md.
 */
export { StoreServer, type StoreServerOptions } from './server';
export { StoreClient, type StoreClientOptions } from './client';
export { DEFAULT_MAX_FRAME_BYTES, type StoreErrorCode } from './protocol';
