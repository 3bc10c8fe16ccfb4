import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

/** Who may import whom (../shared/DESIGN.md): imports point down the layer list. */
const layers = {
  core: [],
  registry: ['core'],
  spec: ['core', 'registry'],
  transform: ['core', 'registry'],
  resilience: ['core'],
  observability: ['core'],
  store: ['core'],
  connectors: ['core', 'registry', 'resilience', 'transform', 'observability'],
  engine: ['core', 'registry', 'spec', 'store', 'observability', 'resilience', 'transform'],
  admin: ['core', 'engine', 'observability', 'store'],
  // Sync composes pull readers and SQL targets from the connectors' drivers, like app does.
  sync: ['core', 'registry', 'spec', 'store', 'observability', 'resilience', 'transform', 'connectors'],
  app: ['core', 'registry', 'spec', 'store', 'observability', 'engine', 'admin', 'connectors', 'transform', 'resilience', 'sync'],
  cli: ['core', 'registry', 'spec', 'store', 'app', 'observability', 'engine', 'connectors', 'sync'],
};
const all = Object.keys(layers);

function layerPatterns(layer, allowed) {
  return all
    .filter((l) => l !== layer && !allowed.includes(l))
    .map((l) => ({
      group: [`../${l}/*`, `../../${l}/*`, `../../../${l}/*`, `../${l}`, `../../${l}`],
      message: `src/${layer} may not import src/${l} (see DESIGN.md layers)`,
    }));
}

const boundaryConfigs = Object.entries(layers).map(([layer, allowed]) => ({
  files: [`src/${layer}/**/*.ts`],
  ignores: ['src/**/*.test.ts'],
  rules: { 'no-restricted-imports': ['error', { patterns: layerPatterns(layer, allowed) }] },
}));

// A connector never imports another connector (src/connectors/index.ts registers them all).
boundaryConfigs.push({
  files: ['src/connectors/*/**/*.ts'],
  ignores: ['src/**/*.test.ts'],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          ...layerPatterns('connectors', layers.connectors),
          { regex: '^\\.\\./(?!\\.\\.)[^/]+/', message: 'a connector may not import another connector' },
        ],
      },
    ],
  },
});

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'coverage/**', '.interchange/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node }, ecmaVersion: 2023, sourceType: 'module' },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  ...boundaryConfigs,
);
