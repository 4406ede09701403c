/** Helpers shared by the store's tests. */
import { StoreError } from '../../lib/store';

/** The rejection of `promise` (fails the test if it resolves or rejects with something else). */
export async function rejection(promise: Promise<unknown>): Promise<StoreError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(StoreError);
    return err as StoreError;
  }
  throw new Error('expected a rejection, but the promise resolved');
}
