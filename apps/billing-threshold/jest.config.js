module.exports = { ...require('../../jest.preset.js'), displayName: 'billing-threshold', rootDir: __dirname };
