#!/usr/bin/env node
// Entry point of the `vla-node` binary: runs the compiled CLI (built by `npm ci` via `prepare`).
// The server commands need V8 flags that only apply at start-up (src/cli/node-flags.ts): when
// they are missing, the command runs in a child process that has them.
import { fileURLToPath } from 'node:url';
import { missingNodeFlags, relaunch, watchParent } from '../dist/cli/node-flags.js';

const argv = process.argv.slice(2);
const flags = missingNodeFlags(argv, process.execArgv, process.env.NODE_OPTIONS);
if (flags.length > 0) {
  process.exitCode = await relaunch(fileURLToPath(import.meta.url), flags, argv);
} else {
  watchParent();
  const { main } = await import('../dist/cli/main.js');
  process.exitCode = await main(argv);
}
