#!/usr/bin/env node
// Part of `npm run build`: tsc emits only JavaScript, so every other file under src/
// (the demo scripts, the console's static files) is copied to the same place under dist/,
// where the compiled modules look for it (next to themselves, through import.meta.url).
import { cpSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');
const out = join(root, process.argv[2] ?? 'dist');
let copied = 0;
for (const entry of readdirSync(src, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || entry.name.endsWith('.ts')) continue;
  const from = join(entry.parentPath, entry.name);
  cpSync(from, join(out, relative(src, from)));
  copied += 1;
}
console.log(`copied ${copied} non-TypeScript files from src/ to ${relative(root, out) || '.'}/`);
