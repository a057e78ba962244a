#!/usr/bin/env node
// Keeps the module map of DESIGN §4 true: imports flow downward only, surfaces never
// import each other, and there are no import cycles inside src/.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(new URL('..', import.meta.url).pathname, 'src');

/** What each top-level module may import (besides itself). */
const allowed = {
  core: [],
  config: ['core'],
  observability: ['core'],
  storage: ['core', 'config', 'observability'],
  queue: ['core', 'config', 'observability'],
  approvals: ['core', 'config', 'observability'],
  agent: ['core', 'config', 'observability'],
  runner: ['agent', 'approvals', 'queue', 'storage', 'core', 'config', 'observability'],
  bot: ['agent', 'approvals', 'queue', 'storage', 'core', 'config', 'observability'],
  // The CLI's commands (src/cli/); it reaches main.ts and doctor.ts only by dynamic import (main re-exports it).
  cli: ['bot', 'runner', 'agent', 'approvals', 'queue', 'storage', 'core', 'config', 'observability'],
};

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

const moduleOf = (file) => {
  const rel = relative(root, file).split('/');
  return rel.length === 1 ? 'main' : rel[0];
};
const surfaceOf = (file) => /\/bot\/surfaces\/([^/]+)\//.exec(file)?.[1];

const problems = [];
const graph = new Map();
for (const file of files(root)) {
  const source = readFileSync(file, 'utf8');
  const deps = [];
  for (const m of source.matchAll(/^\s*(?:import|export)[^'"]*?from\s+['"](\.[^'"]+)['"]/gm)) {
    const target = resolve(dirname(file), m[1]);
    deps.push(target);
    const from = moduleOf(file);
    const to = moduleOf(target);
    if (from !== 'main' && from !== to && !(allowed[from] ?? []).includes(to)) {
      problems.push(`${relative(root, file)} imports ${relative(root, target)}: ${from} may not import ${to}`);
    }
    const fs = surfaceOf(file);
    const ts = surfaceOf(target);
    if (fs && ts && fs !== ts) problems.push(`${relative(root, file)} imports another surface (${ts})`);
  }
  graph.set(file, deps);
}

// Cycle detection over files (depth-first, colouring).
const state = new Map();
const stack = [];
function visit(file) {
  state.set(file, 'active');
  stack.push(file);
  for (const dep of graph.get(file) ?? []) {
    if (!graph.has(dep)) continue;
    if (state.get(dep) === 'active') {
      const cycle = stack
        .slice(stack.indexOf(dep))
        .concat(dep)
        .map((f) => relative(root, f));
      problems.push(`import cycle: ${cycle.join(' → ')}`);
    } else if (!state.has(dep)) {
      visit(dep);
    }
  }
  stack.pop();
  state.set(file, 'done');
}
for (const file of graph.keys()) if (!state.has(file)) visit(file);

if (problems.length > 0) {
  console.error(`Import rules broken (docs/architecture.md, "Modules"):\n  ${[...new Set(problems)].join('\n  ')}`);
  process.exit(1);
}
console.log(`imports ok: ${graph.size} files, no cycles, modules import downward only`);
