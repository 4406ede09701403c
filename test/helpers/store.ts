/** Helpers shared by the store's tests. */
import { MicsError } from '../../lib/core/errors';

/** The rejection of `promise` (fails the test if it resolves or rejects with something else). */
export async function rejection(promise: Promise<unknown>): Promise<MicsError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(MicsError);
    return err as MicsError;
  }
  throw new Error('expected a rejection, but the promise resolved');
}
