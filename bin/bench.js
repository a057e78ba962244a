#!/usr/bin/env node
// Runs every benchmark in bench/ one after another; each prints its own figures.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';

const dir = new URL('../bench/', import.meta.url);
const only = process.argv[2];
for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts') && f !== 'stats.ts')) {
  if (only && !file.includes(only)) continue;
  console.log(`\n# ${file}`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', new URL(file, dir).pathname], { stdio: 'inherit' });
  if (r.status !== 0) process.exitCode = 1;
}
