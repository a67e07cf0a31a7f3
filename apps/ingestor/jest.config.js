module.exports = { ...require('../../jest.preset.js'), displayName: 'ingestor', rootDir: __dirname };
