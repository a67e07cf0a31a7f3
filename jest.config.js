// All suites of the monorepo in one run (what `npm test` and CI execute).
module.exports = {
  projects: ['<rootDir>/apps/*/jest.config.js', '<rootDir>/libs/*/jest.config.js'],
};
