/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  // Multi-process tests spawn real ranks; on a 2-core machine they need room.
  testTimeout: 120000,
  maxWorkers: 1,
};
