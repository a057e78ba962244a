#!/usr/bin/env node
// Runs the TypeScript sources directly (through tsx), so a checkout works right after `npm ci`.
import { register } from 'tsx/esm/api';

register();
const { cli } = await import('../src/main.ts');
process.exitCode = await cli(process.argv.slice(2));
