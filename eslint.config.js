// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// Layers (docs/architecture.md): core < sim, compression, bench < transports < cli and the public
// entry points. A module imports its own layer's and lower layers' modules only; the siblings of
// the middle layer do not import each other (bench may drive the simulator), a transport does
// not import another (they share ../messages/), and a CLI command does not import another
// command (shared flags and setup live in the CLI's helper modules).
const CORE = [
  'backend',
  'config',
  'ingest',
  'model',
  'native',
  'flow',
  'pipeline',
  'policy',
  'pruning',
  'runtime',
  'util',
];
const TRANSPORTS = ['foxglove', 'mcap', 'ros', 'zmq'];
const RECORD_SIM = 'src/transports/mcap/record.ts';
const COMMANDS = [
  'bench-decode',
  'bench-foxglove',
  'bench-ingest',
  'bench-kernels',
  'bench-pruning',
  'bench-report',
  'bench-serve',
  'bench-soak',
  'bench-flow',
  'compress',
  'dataset',
  'foxglove-picture',
  'info',
  'overlay',
  'record-sim',
  'replay',
  'serve',
  'sim',
  'start',
];
/** Import patterns (gitignore style, matched against the import path) of the folders named. */
const folders = (...names) => names.flatMap((n) => [`**/${n}/*`, `**/${n}/**`]);
const layer = (files, forbidden, why, ignores = []) => ({
  files,
  ignores,
  rules: {
    'no-restricted-imports': ['error', { patterns: [{ group: forbidden, message: why }] }],
  },
});
const layers = [
  layer(
    [...CORE.map((d) => `src/${d}/**`), 'src/errors.ts'],
    folders('sim', 'compression', 'bench', 'transports', 'cli'),
    'core (docs/architecture.md) imports no simulator, compression, benchmark, transport or CLI',
  ),
  layer(
    ['src/sim/**'],
    folders('compression', 'bench', 'transports', 'cli'),
    'the simulator imports only core',
  ),
  layer(
    ['src/compression/**'],
    folders('sim', 'bench', 'transports', 'cli'),
    'compression imports only core: the model is scored by the evaluator it is given',
  ),
  layer(
    ['src/bench/**'],
    folders('compression', 'transports', 'cli'),
    'benchmarks import core and the simulator',
  ),
  layer(
    ['src/transports/messages/**'],
    folders('sim', 'compression', 'bench', 'cli', ...TRANSPORTS),
    'the shared messages are transport-neutral',
  ),
  ...TRANSPORTS.map((t) =>
    layer(
      [`src/transports/${t}/**`],
      folders('sim', 'compression', 'bench', 'cli', ...TRANSPORTS.filter((o) => o !== t)),
      'a transport imports core and ../messages/, never another transport, the simulator or the CLI',
      [RECORD_SIM],
    ),
  ),
  // Recording simulated runs as bags (`record-sim`) is the one transport module that drives the
  // simulator: the simulator sits below the transports, so this import points down.
  layer(
    [RECORD_SIM],
    folders('compression', 'bench', 'cli', 'foxglove', 'ros', 'zmq'),
    'a transport imports core and ../messages/, never another transport or the CLI',
  ),
  layer(
    COMMANDS.map((c) => `src/cli/${c}.ts`),
    COMMANDS.flatMap((c) => [`./${c}.js`]),
    'a CLI command does not import another; move what they share to a helper module (setup, serve-options, foxglove, ...) or below the CLI',
  ),
  layer(
    ['src/index.ts', 'src/core.ts', 'src/bridge.ts', 'src/replay.ts', 'src/ros.ts'],
    folders('cli'),
    'the public entry points import no CLI module',
  ),
];

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      'native/build/**',
      'bin/**',
      'models/**',
      // compiled by test/transports/ros/types.test.ts with its own tsconfig
      'test/transports/ros/fixtures/**',
      // declarations only, for a build without the optional rclnodejs
      'types/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/no-unnecessary-condition': [
        'error',
        { allowConstantLoopConditions: true },
      ],
    },
  },
  ...layers,
  {
    files: ['eslint.config.js', 'scripts/**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
);
