module.exports = { ...require('../../jest.preset.js'), displayName: 'simulator-app', rootDir: __dirname };
