module.exports = { ...require('../../jest.preset.js'), displayName: 'traffic-anomaly', rootDir: __dirname };
