import nx from '@nx/eslint-plugin';

// Module boundaries (ADR 0001): apps use libs, libs never use apps; contracts and the platform kit
// (scope:shared) are for everyone; a domain scope only for itself and the apps built on it.
// Tests may additionally use the test harness (scope:testing); production code may not.
const boundaries = (allowTestingEverywhere) => {
  const testing = allowTestingEverywhere ? ['scope:testing'] : [];
  return [
    'error',
    {
      enforceBuildableLibDependency: false,
      banTransitiveDependencies: true,
      allow: [],
      depConstraints: [
        { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:lib'] },
        { sourceTag: 'type:lib', onlyDependOnLibsWithTags: ['type:lib'] },
        { sourceTag: 'scope:shared', onlyDependOnLibsWithTags: ['scope:shared', ...testing] },
        { sourceTag: 'scope:testing', onlyDependOnLibsWithTags: ['scope:shared', 'scope:testing'] },
        { sourceTag: 'scope:ingest', onlyDependOnLibsWithTags: ['scope:shared', 'scope:ingest', ...testing] },
        { sourceTag: 'scope:ops', onlyDependOnLibsWithTags: ['scope:shared', 'scope:ops', 'scope:ingest', 'scope:warehouse', 'scope:traffic', ...testing] },
        { sourceTag: 'scope:windowing', onlyDependOnLibsWithTags: ['scope:shared', 'scope:windowing', ...testing] },
        { sourceTag: 'scope:warehouse', onlyDependOnLibsWithTags: ['scope:shared', 'scope:warehouse', ...testing] },
        { sourceTag: 'scope:stores', onlyDependOnLibsWithTags: ['scope:shared', 'scope:stores', ...testing] },
        { sourceTag: 'scope:billing', onlyDependOnLibsWithTags: ['scope:shared', 'scope:stores', 'scope:billing', ...testing] },
        { sourceTag: 'scope:traffic', onlyDependOnLibsWithTags: ['scope:shared', 'scope:stores', 'scope:windowing', 'scope:traffic', ...testing] },
        { sourceTag: 'scope:notifications', onlyDependOnLibsWithTags: ['scope:shared', 'scope:stores', 'scope:notifications', ...testing] },
      ],
    },
  ];
};

export default [
  ...nx.configs['flat/base'],
  ...nx.configs['flat/typescript'],
  ...nx.configs['flat/javascript'],
  { ignores: ['**/jest.config.js', 'jest.preset.js', '**/dist', '**/node_modules', '**/generated/**', 'tmp/**', '.nx/**'] },
  {
    files: ['**/*.ts', '**/*.js', '**/*.mjs'],
    rules: {
      '@nx/enforce-module-boundaries': boundaries(false),
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['**/*.spec.ts', '**/__fixtures__/**/*.ts'],
    rules: { '@nx/enforce-module-boundaries': boundaries(true) },
  },
];
