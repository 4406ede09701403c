/** Errors of the launcher that carry their own exit code, so the entry point can report them plainly. */

/** A bad option, option value or input file: the message names the value and what is valid. Exit code 2. */
export class UsageError extends Error {
  /** Exit code of the launcher for usage errors (the shell convention for bad usage). */
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The job could not be started or wired (rendezvous timeout, inconsistent nodes, lost store). Exit code 1. */
export class LaunchError extends Error {
  /** Exit code of the launcher for launch errors. */
  readonly exitCode = 1;
  constructor(message: string) {
    super(message);
    this.name = 'LaunchError';
  }
}
