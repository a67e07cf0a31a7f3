module.exports = { ...require('../../jest.preset.js'), displayName: 'windower-runtime', rootDir: __dirname };
