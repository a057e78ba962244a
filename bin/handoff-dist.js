#!/usr/bin/env node
// Runs the compiled JavaScript in dist/ (`npm run build`): what the app image starts.
// A checkout uses bin/handoff.js instead, which runs the TypeScript sources through tsx.
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * With HANDOFF_BUILTIN_SKILLS_DIR set (docker-compose.yml's runners), puts a copy of the
 * image's built-in skills there, unless an identical copy is already there. Runs mount skill
 * folders into sandboxes through the host's Docker engine, which sees host paths only, so
 * that folder MUST be on a path that is the same inside and outside (under the data dir).
 * The copy is made beside it and renamed into place: a runner starting at the same time, or
 * a sandbox already mounting the old copy, never sees half a folder.
 */
function placeBuiltInSkills(target) {
  const source = fileURLToPath(new URL('../skills/', import.meta.url));
  if (resolve(target) === resolve(source)) return;
  const hash = createHash('sha256');
  for (const e of readdirSync(source, { recursive: true, withFileTypes: true }).filter((x) => x.isFile())) {
    const file = join(e.parentPath, e.name);
    hash
      .update(`${relative(source, file)}\0`)
      .update(readFileSync(file))
      .update('\0');
  }
  const digest = hash.digest('hex');
  const marker = join(target, '.handoff-skills-sha256');
  if (existsSync(marker) && readFileSync(marker, 'utf8') === digest) return;
  const suffix = `${process.pid}-${randomBytes(3).toString('hex')}`;
  const fresh = `${target}.new-${suffix}`;
  const old = `${target}.old-${suffix}`;
  cpSync(source, fresh, { recursive: true });
  writeFileSync(join(fresh, '.handoff-skills-sha256'), digest);
  try {
    if (existsSync(target)) renameSync(target, old);
    renameSync(fresh, target);
  } catch (err) {
    // Another runner put its copy there first: fine if it is this one.
    if (!(existsSync(marker) && readFileSync(marker, 'utf8') === digest)) throw err;
  } finally {
    rmSync(fresh, { recursive: true, force: true });
    rmSync(old, { recursive: true, force: true });
  }
}

if (process.env.HANDOFF_BUILTIN_SKILLS_DIR) placeBuiltInSkills(process.env.HANDOFF_BUILTIN_SKILLS_DIR);
// The CLI alone, as bin/handoff.js does: a command loads the rest when it runs.
const { cli } = await import('../dist/cli/index.js');
process.exitCode = await cli(process.argv.slice(2));
