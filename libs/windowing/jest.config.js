module.exports = { ...require('../../jest.preset.js'), displayName: 'windowing', rootDir: __dirname };
