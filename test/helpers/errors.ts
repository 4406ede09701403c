/** How tests take hold of a MicsError: from a Promise that must reject, or a call that must throw. */
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

/** What `fn` throws (fails the test if it returns or throws something else). */
export function thrown(fn: () => unknown): MicsError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(MicsError);
    return err as MicsError;
  }
  throw new Error('expected a throw, but the call returned');
}
