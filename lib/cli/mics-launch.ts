#!/usr/bin/env node
/** `mics-launch`: placeholder until the launcher issue lands; says so instead of pretending. */
process.stderr.write('mics-launch: not implemented yet in this version\n');
process.exit(2);
