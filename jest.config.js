// All suites of the monorepo in one run (what `npm test` and CI execute).
module.exports = {
  projects: ['<rootDir>/apps/*/jest.config.js', '<rootDir>/libs/*/jest.config.js', '<rootDir>/tools/deploy/jest.config.js', '<rootDir>/tools/e2e/jest.config.js', '<rootDir>/tools/bench/jest.config.js'],
  // Global option: per-project testTimeout is ignored in a multi-project run. Integration suites start
  // nats-server and service processes in their hooks.
  testTimeout: 60000,
};
