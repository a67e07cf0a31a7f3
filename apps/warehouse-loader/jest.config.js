module.exports = { ...require('../../jest.preset.js'), displayName: 'warehouse-loader', rootDir: __dirname };
