/**
 * The base of every error this package raises: an Error with a stable `code`
 * (the same codes the native layer uses: MICS_INVALID_ARGUMENT, MICS_TIMEOUT,
 * MICS_PEER_LOST, MICS_MISMATCH, MICS_ABORTED, MICS_UNAVAILABLE, MICS_STORE_*),
 * so programs branch on `code` instead of parsing messages.
 */
export class MicsError extends Error {
  constructor(
    message: string,
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'MicsError';
  }
}

/** Bad input: the message names the value and what is valid. */
export function invalidArgument(message: string): MicsError {
  return new MicsError(message, 'MICS_INVALID_ARGUMENT');
}
