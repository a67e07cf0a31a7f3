module.exports = { ...require('../../jest.preset.js'), displayName: 'windower', rootDir: __dirname };
