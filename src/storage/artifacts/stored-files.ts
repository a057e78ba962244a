import type { StoredFile } from '../../core/index.ts';
import type { ArtifactStore } from './artifact-store.ts';

/**
 * The key of the `n`th input file under `prefix` (`tasks/<id>/in`, `schedules/<id>/in`):
 * a key of its own per file, so names that look alike ("q3 sales.csv", "q3_sales.csv")
 * never share one.
 */
export function inputFileKey(prefix: string, n: number, name: string): string {
  return `${prefix}/${n}-${name.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 100)}`;
}

/**
 * Copies stored files under `prefix`, numbered from `first`, and returns them with their
 * new keys and digests. A file already at its target key is left as it is.
 */
export async function copyStoredFiles(
  store: ArtifactStore,
  files: readonly StoredFile[],
  prefix: string,
  first = 1,
): Promise<StoredFile[]> {
  const out: StoredFile[] = [];
  for (const [i, f] of files.entries()) {
    const key = inputFileKey(prefix, first + i, f.name);
    if (f.key === key) {
      out.push(f);
      continue;
    }
    const put = await store.put(key, await store.get(f.key), { mediaType: f.mediaType });
    out.push({ ...f, key, size: put.size, sha256: put.sha256 });
  }
  return out;
}
