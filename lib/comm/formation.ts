/**
 * How init() notices a rank that dies while the world forms, and names it.
 *
 * Each rank registers with the rendezvous store as its rank of the run's key scope before it
 * publishes anything, and unregisters once the world communicator is connected. The store sees
 * a registered connection close (the process exited or was killed) and fails every wait for
 * the keys that can now never come with MICS_PEER_LOST naming that rank, at once instead of at
 * the rendezvous timeout. When rank 0 hosts the store (no mics-launch), rank 0's death closes
 * the store itself: that too is reported as the loss of rank 0.
 */
import { MicsError } from '../core/errors';
import type { StoreClient } from '../store';
import type { RankEnvironment } from './environment';
import { noteFailure } from './failure-record';

/** Registers this rank for the world's formation (nothing to do in a one-rank world). */
export async function joinFormation(store: StoreClient | undefined, place: RankEnvironment): Promise<void> {
  await store?.withPrefix(place.keyPrefix).register(place.rank);
}

/**
 * The world has formed: this rank leaving is no longer a loss for the others' init().
 * Best effort: if the store cannot be told, the connection is already gone.
 */
export async function leaveFormation(store: StoreClient | undefined, place: RankEnvironment): Promise<void> {
  await store?.withPrefix(place.keyPrefix).unregister().catch(() => undefined);
}

/**
 * The error init() rejects with: a lost rank becomes MICS_PEER_LOST naming it (`peer`); errors
 * of the store (which know no rank) get this rank, group 'world' and op 'init'; the
 * communicator's own errors pass through. Also recorded for the launcher (MICS_ERROR_FILE).
 */
export function formationError(err: unknown, place: RankEnvironment): unknown {
  let out = err;
  if (err instanceof MicsError && err.rank === undefined) {
    const details = { rank: place.rank, group: 'world', op: 'init', cause: err };
    if (err.code === 'MICS_PEER_LOST' && err.peer !== undefined) {
      out = new MicsError(`init() on rank ${place.rank}: rank ${err.peer} exited or was killed during init() (${err.message})`, 'MICS_PEER_LOST', {
        ...details,
        peer: err.peer,
      });
    } else if (err.code === 'MICS_STORE_CLOSED' && !place.storeHosted && place.rank !== 0) {
      out = new MicsError(
        // The store closing says only that rank 0 left init(): by failing (its own timeout, a
        // rank it saw fail) as often as by dying.
        `init() on rank ${place.rank}: rank 0, which hosts the rendezvous store, closed it during init(): its init() failed, or it exited or was killed (${err.message})`,
        'MICS_PEER_LOST',
        { ...details, peer: 0 },
      );
    } else {
      Object.assign(err, { rank: details.rank, group: details.group, op: details.op });
    }
  }
  noteFailure(out);
  return out;
}
