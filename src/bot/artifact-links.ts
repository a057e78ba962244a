import type { Artifact } from '../core/index.ts';
import type { ArtifactStore } from '../storage/index.ts';

/** Fresh download links for a task's artifacts, for a result card or a brief. */
export async function artifactLinks(
  store: ArtifactStore,
  artifacts: readonly Artifact[],
  expiresInMs: number,
): Promise<Array<{ artifact: Artifact; url: string; expiresAt: string }>> {
  return Promise.all(
    artifacts.map(async (artifact) => ({
      artifact,
      ...(await store.downloadUrl(artifact.key, {
        fileName: artifact.name,
        mediaType: artifact.mediaType,
        expiresInMs,
      })),
    })),
  );
}
