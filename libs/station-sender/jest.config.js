module.exports = { ...require('../../jest.preset.js'), displayName: 'station-sender', rootDir: __dirname };
