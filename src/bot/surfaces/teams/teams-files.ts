import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { fileRefusal, type IncomingFile, inputExtensions, type RefusedFile, tooLarge } from '../../incoming-file.ts';
import type { ClientCredentials, HostAllowlist } from './teams-auth.ts';

/** An attachment as Teams puts it on a message activity. */
export interface TeamsAttachment {
  contentType?: string | null;
  contentUrl?: string | null;
  name?: string | null;
  content?: unknown;
}

export const fileDownloadInfo = 'application/vnd.microsoft.teams.file.download.info';
export const graphScope = 'https://graph.microsoft.com/.default';

export interface TeamsFileOptions {
  maxBytes: number;
  maxFiles: number;
  /** Hosts files may be downloaded from (SharePoint/OneDrive); nothing else is fetched. */
  fileHosts: HostAllowlist;
  /** Microsoft Graph, when enabled: channel and group-chat files live in SharePoint and need it. */
  graph?: { url: string; credentials: ClientCredentials };
  timeoutMs?: number;
}

/** The attachments of a message that are files (cards and inline HTML are not). */
export function fileAttachments(attachments: readonly TeamsAttachment[] | undefined): TeamsAttachment[] {
  return (attachments ?? []).filter((a) => a.contentType === fileDownloadInfo || a.contentType === 'reference');
}

/**
 * Downloads the files of a request into streams for the gateway. A personal chat's file
 * comes with a short-lived `downloadUrl`; a file shared in a channel or group chat is a
 * SharePoint reference, fetched through Graph with the app's own token when Graph is
 * enabled. Files that cannot be used are returned with the reason, for the thread.
 */
export async function downloadTeamsFiles(
  attachments: readonly TeamsAttachment[],
  options: TeamsFileOptions,
): Promise<{ accepted: IncomingFile[]; refused: RefusedFile[] }> {
  const accepted: IncomingFile[] = [];
  const refused: RefusedFile[] = [];
  const limits = { maxBytes: options.maxBytes, maxFiles: options.maxFiles, extensions: inputExtensions };
  for (const a of fileAttachments(attachments)) {
    const name = (a.name ?? 'file').trim();
    const refuse = (reason: string) => refused.push({ name: name.slice(0, 80), reason });
    const refusal = fileRefusal(name, undefined, accepted.length, limits);
    if (refusal) {
      refuse(refusal);
      continue;
    }
    let url: string | undefined;
    let size: number | undefined;
    if (a.contentType === fileDownloadInfo) {
      const content = (a.content ?? {}) as { downloadUrl?: unknown };
      url = typeof content.downloadUrl === 'string' ? content.downloadUrl : undefined;
      if (!url) {
        refuse('Teams sent no download link for it');
        continue;
      }
    } else {
      if (!options.graph) {
        refuse(
          'files shared in channels and group chats live in SharePoint, and Microsoft Graph is not enabled here (an admin sets TEAMS_GRAPH_ENABLED); attach it in a personal chat with Handoff instead',
        );
        continue;
      }
      try {
        const item = await driveItem(a.contentUrl ?? '', options.graph, options.timeoutMs);
        url = item.downloadUrl;
        size = item.size;
      } catch (err) {
        refuse((err as Error).message);
        continue;
      }
    }
    if (!options.fileHosts.allows(url)) {
      refuse('its download link does not point at SharePoint or OneDrive');
      continue;
    }
    if (size !== undefined && size > options.maxBytes) {
      refuse(tooLarge(options.maxBytes));
      continue;
    }
    try {
      // The link is pre-authenticated: no token is sent with it.
      const res = await fetch(url, { signal: AbortSignal.timeout(options.timeoutMs ?? 60_000), redirect: 'error' });
      if (!res.ok || !res.body) {
        refuse(`the download failed (${res.status})`);
        continue;
      }
      const declared = Number(res.headers.get('content-length') ?? Number.NaN);
      if (Number.isFinite(declared) && declared > options.maxBytes) {
        await res.body.cancel();
        refuse(tooLarge(options.maxBytes));
        continue;
      }
      accepted.push({
        name,
        size: Number.isFinite(declared) ? declared : (size ?? 0),
        // The store counts the bytes and stops at the limit whatever the headers said.
        body: Readable.fromWeb(res.body as unknown as WebReadableStream<Uint8Array>),
      });
    } catch (err) {
      refuse(`the download failed (${(err as Error).name === 'TimeoutError' ? 'timed out' : 'network error'})`);
    }
  }
  return { accepted, refused };
}

/** Graph's "shares" id of a sharing URL: `u!` + unpadded base64url of the URL. */
export function shareId(url: string): string {
  return `u!${Buffer.from(url, 'utf8').toString('base64url')}`;
}

async function driveItem(
  contentUrl: string,
  graph: NonNullable<TeamsFileOptions['graph']>,
  timeoutMs = 60_000,
): Promise<{ downloadUrl: string; size?: number }> {
  let parsed: URL;
  try {
    parsed = new URL(contentUrl);
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new Error('scheme');
  } catch {
    throw new Error('its SharePoint link is not valid');
  }
  const token = await graph.credentials.token(graphScope);
  const res = await fetch(`${graph.url.replace(/\/+$/, '')}/v1.0/shares/${shareId(parsed.href)}/driveItem`, {
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(timeoutMs),
    redirect: 'error',
  });
  if (res.status === 404) throw new Error('Microsoft Graph cannot find it (was it deleted or moved?)');
  if (res.status === 401 || res.status === 403)
    throw new Error('Handoff may not read it through Microsoft Graph (the app needs Files.Read.All)');
  if (!res.ok) throw new Error(`Microsoft Graph answered ${res.status}`);
  const body = (await res.json()) as { size?: unknown; '@microsoft.graph.downloadUrl'?: unknown };
  const downloadUrl = body['@microsoft.graph.downloadUrl'];
  if (typeof downloadUrl !== 'string') throw new Error('Microsoft Graph gave no download link for it');
  return { downloadUrl, ...(typeof body.size === 'number' ? { size: body.size } : {}) };
}

/**
 * Whether `userId` (an Entra object id) is in one of `groups`, through Graph's
 * checkMemberGroups (transitive). Throws when Graph cannot answer: the click is refused.
 */
export async function inEntraGroups(
  userId: string,
  groups: readonly string[],
  graph: NonNullable<TeamsFileOptions['graph']>,
): Promise<boolean> {
  if (!/^[0-9a-f-]{36}$/i.test(userId)) return false;
  const token = await graph.credentials.token(graphScope);
  const res = await fetch(`${graph.url.replace(/\/+$/, '')}/v1.0/users/${userId}/checkMemberGroups`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ groupIds: groups.slice(0, 20) }),
    signal: AbortSignal.timeout(15_000),
    redirect: 'error',
  });
  if (!res.ok) throw new Error(`Microsoft Graph answered ${res.status} to a group lookup`);
  const body = (await res.json()) as { value?: unknown };
  const wanted = new Set(groups.map((g) => g.toLowerCase()));
  return Array.isArray(body.value) && body.value.some((g) => wanted.has(String(g).toLowerCase()));
}
