// A run's inputs laid out on the runner's disk: copied in one step from a local artifact
// store, streamed from any other, readable by the sandbox user either way, and whatever an
// earlier attempt left replaced (a folder, a file, or a link to a pool container's in/).
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../../src/core/index.ts';
import { prepareWorkspace, workspaceDir } from '../../../src/runner/workspace.ts';
import { type ArtifactStore, LocalArtifactStore } from '../../../src/storage/index.ts';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function scratch(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'handoff-workspace-test-'));
  dirs.push(d);
  return d;
}

async function localStore(root: string): Promise<LocalArtifactStore> {
  const store = new LocalArtifactStore({
    root: join(root, 'store'),
    signingSecret: 'x'.repeat(32),
    publicUrl: 'http://127.0.0.1:1',
  });
  await store.put('t_1/in/sales.csv', Readable.from([Buffer.from('region,total\nnorth,3\n')]), {
    mediaType: 'text/csv',
  });
  await store.put('t_1/in/notes.md', Readable.from([Buffer.from('# notes\n')]), { mediaType: 'text/markdown' });
  return store;
}

const inputs = [
  { name: 'sales.csv', key: 't_1/in/sales.csv' },
  { name: 'notes.md', key: 't_1/in/notes.md' },
];

describe('prepareWorkspace', () => {
  it('copies every input from a local store, readable by all though the store keeps its files private', async () => {
    const root = await scratch();
    const store = await localStore(root);
    const dir = await prepareWorkspace(join(root, 'ws'), 't_1', inputs, store);
    expect(dir).toBe(workspaceDir(join(root, 'ws'), 't_1'));
    expect((await readdir(join(dir, 'in'))).sort()).toEqual(['notes.md', 'sales.csv']);
    expect(await readFile(join(dir, 'in', 'sales.csv'), 'utf8')).toBe('region,total\nnorth,3\n');
    expect((await stat(join(dir, 'in', 'sales.csv'))).mode & 0o777).toBe(0o644);
    expect((await stat(join(root, 'store', 't_1/in/sales.csv'))).mode & 0o777).toBe(0o600);
  });

  it('streams from a store that cannot copy, with the same result', async () => {
    const root = await scratch();
    const local = await localStore(root);
    // Only the required methods: no copyToFile.
    const streamed: ArtifactStore = {
      name: 'streamed',
      put: (k, b, o) => local.put(k, b, o),
      get: (k) => local.get(k),
      exists: (k) => local.exists(k),
      delete: (k) => local.delete(k),
      deletePrefix: (p) => local.deletePrefix(p),
      downloadUrl: (k, o) => local.downloadUrl(k, o),
    };
    const dir = await prepareWorkspace(join(root, 'ws'), 't_1', inputs, streamed);
    expect(await readFile(join(dir, 'in', 'notes.md'), 'utf8')).toBe('# notes\n');
    expect((await stat(join(dir, 'in', 'notes.md'))).mode & 0o004).toBe(0o004);
  });

  it('replaces what an earlier attempt left, and refuses an input the store does not hold', async () => {
    const root = await scratch();
    const store = await localStore(root);
    const stale = join(workspaceDir(join(root, 'ws'), 't_1'), 'in');
    await mkdir(stale, { recursive: true });
    await writeFile(join(stale, 'old.txt'), 'from an earlier attempt');
    const dir = await prepareWorkspace(join(root, 'ws'), 't_1', inputs.slice(0, 1), store);
    expect(await readdir(join(dir, 'in'))).toEqual(['sales.csv']);
    await expect(
      prepareWorkspace(join(root, 'ws'), 't_1', [{ name: 'gone.csv', key: 't_1/in/gone.csv' }], store),
    ).rejects.toMatchObject({ code: ErrorCodes.notFound });
  });

  it('replaces a link an earlier attempt left as in/ with a folder of its own, leaving what it pointed to alone', async () => {
    const root = await scratch();
    const store = await localStore(root);
    // A warm pool claim makes the run's in/ a link to the pool container's own in/.
    const poolIn = join(root, 'pool-abc', 'in');
    await mkdir(poolIn, { recursive: true });
    await writeFile(join(poolIn, 'old.txt'), 'the last attempt');
    const inDir = join(workspaceDir(join(root, 'ws'), 't_1'), 'in');
    await mkdir(join(inDir, '..'), { recursive: true });
    await symlink(poolIn, inDir);
    await prepareWorkspace(join(root, 'ws'), 't_1', inputs.slice(0, 1), store);
    expect((await lstat(inDir)).isDirectory()).toBe(true);
    expect(await readdir(inDir)).toEqual(['sales.csv']);
    expect(await readdir(poolIn)).toEqual(['old.txt']);

    // The same, once the pool container's folder is gone (a dangling link), and with a file in the way.
    await rm(inDir, { recursive: true });
    await symlink(join(root, 'pool-gone', 'in'), inDir);
    await prepareWorkspace(join(root, 'ws'), 't_1', inputs.slice(1), store);
    expect(await readdir(inDir)).toEqual(['notes.md']);
    await rm(inDir, { recursive: true });
    await writeFile(inDir, 'not a folder');
    await prepareWorkspace(join(root, 'ws'), 't_1', inputs, store);
    expect((await readdir(inDir)).sort()).toEqual(['notes.md', 'sales.csv']);
  });
});
