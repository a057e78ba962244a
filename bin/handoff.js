#!/usr/bin/env node
// Runs the TypeScript sources directly (through tsx), so a checkout works right after `npm ci`.
import { register } from 'tsx/esm/api';

register();
// The CLI alone (not main.ts): a command loads the rest of the application when it runs, so
// `--help` and shell completion stay quick. main.ts re-exports the same `cli`.
const { cli } = await import('../src/cli/index.ts');
process.exitCode = await cli(process.argv.slice(2));
