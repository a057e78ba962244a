import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Activity } from '@microsoft/agents-activity';
import { ConnectorClient } from '@microsoft/agents-hosting';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BOT_FRAMEWORK_SCOPE,
  FakeBotConnector,
  GRAPH_SCOPE,
  personalConversationId,
  shareIdFor,
  startTeamsFakes,
  type TeamsActivity,
  type TeamsFakes,
  teamsChannel,
  teamsTeam,
  teamsUser,
} from '../fakes/teams-server.ts';

let fakes: TeamsFakes;

beforeAll(async () => {
  fakes = await startTeamsFakes();
});

afterAll(async () => {
  await fakes?.close();
});

async function token(scope: string, secret = fakes.appPassword): Promise<Response> {
  return fetch(fakes.entra.tokenEndpoint(), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: fakes.appId,
      client_secret: secret,
      scope,
    }),
  });
}

async function accessToken(scope: string): Promise<string> {
  const res = await token(scope);
  expect(res.status).toBe(200);
  return ((await res.json()) as { access_token: string }).access_token;
}

/** The SDK rejects with an HttpError carrying the response. */
async function httpFailure(p: Promise<unknown>): Promise<{ status: number; data: unknown; headers: Headers }> {
  const err = (await p.then(
    () => undefined,
    (e: unknown) => e,
  )) as { response?: { status: number; data: unknown; headers: Headers } } | undefined;
  if (!err?.response) throw new Error('expected the call to fail with an HTTP error');
  return err.response;
}

describe('FakeEntra', () => {
  it('issues client-credentials tokens per scope and refuses a wrong secret like Entra', async () => {
    const wrong = await token(BOT_FRAMEWORK_SCOPE, 'not-the-secret');
    expect(wrong.status).toBe(401);
    const refusal = (await wrong.json()) as { error: string; error_description: string; error_codes: number[] };
    expect(refusal.error).toBe('invalid_client');
    expect(refusal.error_description).toMatch(/^AADSTS7000215: /);

    const res = await token(BOT_FRAMEWORK_SCOPE);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599 });
    const jwks = createRemoteJWKSet(new URL(`${fakes.entra.url}/${fakes.tenantId}/discovery/v2.0/keys`));
    const { payload } = await jwtVerify(body.access_token as string, jwks, {
      audience: 'https://api.botframework.com',
    });
    expect(payload).toMatchObject({
      iss: `https://login.microsoftonline.com/${fakes.tenantId}/v2.0`,
      appid: fakes.appId,
      azp: fakes.appId,
      tid: fakes.tenantId,
    });
    expect(payload.exp! - payload.iat!).toBe(3600);

    const graph = await accessToken(GRAPH_SCOPE);
    expect(await fakes.entra.verifyBotToken(`Bearer ${graph}`, 'https://graph.microsoft.com')).toBe(true);
    expect(await fakes.entra.verifyBotToken(`Bearer ${graph}`, 'https://api.botframework.com')).toBe(false);
    expect(fakes.entra.tokenCount(BOT_FRAMEWORK_SCOPE)).toBe(1);
    expect(fakes.entra.tokenCount(GRAPH_SCOPE)).toBe(1);

    const badScope = await token('https://api.botframework.com');
    expect(badScope.status).toBe(400);
    expect(((await badScope.json()) as { error: string }).error).toBe('invalid_scope');
  });

  it('publishes Bot Framework metadata whose keys verify channel tokens, and not forged or expired ones', async () => {
    const metadata = (await (await fetch(fakes.entra.openIdMetadataUrl)).json()) as Record<string, unknown>;
    expect(metadata).toMatchObject({
      issuer: 'https://api.botframework.com',
      jwks_uri: `${fakes.entra.url}/v1/.well-known/keys`,
      id_token_signing_alg_values_supported: ['RS256'],
      token_endpoint_auth_methods_supported: ['private_key_jwt'],
    });
    const keys = (await (await fetch(metadata.jwks_uri as string)).json()) as { keys: Array<Record<string, unknown>> };
    expect(keys.keys[0]).toMatchObject({
      kty: 'RSA',
      use: 'sig',
      kid: fakes.entra.channelKid,
      endorsements: ['msteams'],
    });

    const jwks = createRemoteJWKSet(new URL(metadata.jwks_uri as string));
    const verify = (jwt: string) =>
      jwtVerify(jwt, jwks, { issuer: metadata.issuer as string, audience: fakes.appId, algorithms: ['RS256'] });
    const serviceUrl = fakes.connector.url;

    const genuine = await fakes.entra.channelToken({ appId: fakes.appId, serviceUrl });
    expect(decodeProtectedHeader(genuine)).toMatchObject({ alg: 'RS256', kid: fakes.entra.channelKid });
    const { payload } = await verify(genuine);
    expect(payload).toMatchObject({ iss: 'https://api.botframework.com', aud: fakes.appId, serviceurl: serviceUrl });
    expect(payload.nbf).toBeTypeOf('number');

    const rogue = await fakes.entra.channelToken({ appId: fakes.appId, serviceUrl, signWith: 'rogue' });
    expect(decodeProtectedHeader(rogue).kid).toBe(fakes.entra.channelKid);
    await expect(verify(rogue)).rejects.toThrow(/signature verification failed/);
    const expired = await fakes.entra.channelToken({ appId: fakes.appId, serviceUrl, expiresInSec: -600 });
    await expect(verify(expired)).rejects.toThrow(/"exp" claim timestamp check failed/);
    const otherBot = await fakes.entra.channelToken({ appId: fakes.appId, serviceUrl, audience: 'someone-else' });
    await expect(verify(otherBot)).rejects.toThrow(/"aud" claim/);
    const noServiceUrl = await fakes.entra.channelToken({ appId: fakes.appId, serviceUrl, omitServiceUrl: true });
    expect((await verify(noServiceUrl)).payload.serviceurl).toBeUndefined();
  });
});

describe('FakeBotConnector with the real ConnectorClient', () => {
  const team = teamsTeam('Platform');
  const channel = teamsChannel(team, 'Deploys');
  const megan = teamsUser('Megan Bowen');

  it('creates a channel post, replies in its thread, edits it and reads the roster', async () => {
    const { connector, tenantId } = fakes;
    connector.addMember(team.id, { ...megan, tenantId });
    connector.addChannel(team.id, channel.id);
    const client = ConnectorClient.createClientWithToken(connector.url, await accessToken(BOT_FRAMEWORK_SCOPE));

    const created = await client.createConversation({
      isGroup: true,
      channelData: { channel: { id: channel.id }, tenant: { id: tenantId } },
      activity: Activity.fromObject({ type: 'message', text: 'Plan ready', channelId: 'msteams' }),
      tenantId,
    });
    expect(created.activityId).toMatch(/^\d{13}$/);
    expect(created.id).toBe(`${channel.id};messageid=${created.activityId}`);
    expect(created.serviceUrl).toBe(connector.url);

    const thread = created.id;
    const sent = await client.sendToConversation(
      thread,
      Activity.fromObject({ type: 'message', text: 'Starting', channelId: 'msteams', conversation: { id: thread } }),
    );
    const reply = await client.replyToActivity(
      thread,
      created.activityId!,
      Activity.fromObject({
        type: 'message',
        text: 'Step 1 done',
        channelId: 'msteams',
        replyToId: created.activityId,
      }),
    );
    await client.sendToConversation(thread, Activity.fromObject({ type: 'typing', channelId: 'msteams' }));
    expect(Number(reply.id)).toBeGreaterThan(Number(sent.id));

    await client.updateActivity(
      thread,
      sent.id,
      Activity.fromObject({ type: 'message', text: 'Finished', channelId: 'msteams', id: sent.id }),
    );

    expect(connector.thread(channel.id, created.activityId!).map((m) => m.activity.text)).toEqual([
      'Plan ready',
      'Finished',
      'Step 1 done',
    ]);
    expect(connector.posts(channel.id).map((m) => m.id)).toEqual([created.activityId]);
    const edited = connector.message(sent.id)!;
    expect(edited.edits).toBe(1);
    expect(edited.history.map((a) => a.text)).toEqual(['Starting', 'Finished']);
    expect(connector.messagesIn(channel.id)).toHaveLength(3);
    expect(connector.typingCount(thread)).toBe(1);
    // The SDK puts the id into the path as it is (':' '@' ';' '=' unencoded); the fake decodes either way.
    expect(connector.callsOf('sendToConversation')[0]?.path).toContain(`/v3/conversations/${thread}/activities`);
    expect(connector.callsOf('sendToConversation')[0]?.conversationId).toBe(thread);

    const member = await client.getConversationMember(megan.id, thread);
    expect(member).toMatchObject({ id: megan.id, name: 'Megan Bowen', aadObjectId: megan.aadObjectId, tenantId });
    const missing = await httpFailure(client.getConversationMember('29:nobody', thread));
    expect(missing.status).toBe(404);
    expect(missing.data).toMatchObject({ error: { code: 'MemberNotFoundInConversation' } });

    const gone = await httpFailure(
      client.updateActivity(thread, '1', Activity.fromObject({ type: 'message', text: 'x', channelId: 'msteams' })),
    );
    expect(gone.status).toBe(404);
    expect(gone.data).toMatchObject({ error: { code: 'ActivityNotFoundInConversation' } });

    // URL-encoded ids are decoded too.
    const encoded = await fetch(`${connector.url}v3/conversations/${encodeURIComponent(thread)}/members`, {
      headers: { authorization: `Bearer ${await accessToken(BOT_FRAMEWORK_SCOPE)}` },
    });
    expect(((await encoded.json()) as unknown[]).length).toBe(1);
  });

  it('opens the same 1:1 chat a person writes from, and refuses calls without a valid token', async () => {
    const { connector, tenantId, appId } = fakes;
    const client = ConnectorClient.createClientWithToken(connector.url, await accessToken(BOT_FRAMEWORK_SCOPE));
    const chat = await client.createConversation({
      isGroup: false,
      members: [{ id: megan.id }],
      channelData: { tenant: { id: tenantId } },
      tenantId,
    } as unknown as Parameters<typeof client.createConversation>[0]);
    expect(chat.id).toBe(personalConversationId(appId, megan.id));
    expect(chat.id).toMatch(/^a:/);
    await client.sendToConversation(
      chat.id,
      Activity.fromObject({ type: 'message', text: 'Your run finished', channelId: 'msteams' }),
    );
    expect(connector.messagesIn(chat.id).map((m) => m.activity.text)).toEqual(['Your run finished']);

    const graphToken = await accessToken(GRAPH_SCOPE);
    for (const bad of [undefined, 'Bearer not.a.jwt', `Bearer ${graphToken}`]) {
      const res = await fetch(`${connector.url}v3/conversations/${chat.id}/activities`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(bad ? { authorization: bad } : {}) },
        body: JSON.stringify({ type: 'message', text: 'sneaky' }),
      });
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ error: { code: 'Unauthorized' } });
    }
    expect(connector.messagesIn(chat.id)).toHaveLength(1);

    connector.refuse(chat.id, 'ConversationBlockedByUser');
    const blocked = await httpFailure(
      client.sendToConversation(chat.id, Activity.fromObject({ type: 'message', text: 'again', channelId: 'msteams' })),
    );
    expect(blocked.status).toBe(403);
    expect(blocked.data).toMatchObject({ error: { code: 'ConversationBlockedByUser' } });
    connector.accept(chat.id);

    const huge = await httpFailure(
      client.sendToConversation(
        chat.id,
        Activity.fromObject({ type: 'message', text: 'x'.repeat(40_000), channelId: 'msteams' }),
      ),
    );
    expect(huge.status).toBe(413);
    expect(huge.data).toMatchObject({ error: { code: 'MessageSizeTooBig' } });
  });

  it('throttles a busy conversation with 429 and Retry-After, and injects failures', async () => {
    const connector = await new FakeBotConnector({
      entra: fakes.entra,
      limit: { perConversationPerSecond: 2, retryAfterSec: 3 },
    }).start();
    try {
      const client = ConnectorClient.createClientWithToken(connector.url, await accessToken(BOT_FRAMEWORK_SCOPE));
      const send = (text: string) =>
        client.sendToConversation(channel.id, Activity.fromObject({ type: 'message', text, channelId: 'msteams' }));
      await send('one');
      await send('two');
      const throttled = await httpFailure(send('three'));
      expect(throttled.status).toBe(429);
      expect(throttled.headers.get('retry-after')).toBe('3');
      expect(throttled.data).toMatchObject({ error: { code: 'Throttled' } });
      expect(connector.throttled).toBe(1);
      expect(connector.posts(channel.id).map((m) => m.activity.text)).toEqual(['one', 'two']);

      connector.failNext(1, 502, { only: 'updateActivity' });
      const first = connector.posts(channel.id)[0]!;
      const failed = await httpFailure(
        client.updateActivity(
          first.conversationId,
          first.id,
          Activity.fromObject({ type: 'message', text: 'x', channelId: 'msteams' }),
        ),
      );
      expect(failed.status).toBe(502);
      expect(connector.callsOf('updateActivity')[0]).toMatchObject({ status: 502, error: 'ServiceError' });
    } finally {
      await connector.close();
    }
  });
});

describe('FakeGraph', () => {
  it('encodes sharing URLs as Graph documents and serves the file behind them', async () => {
    // The example from Graph's "Accessing shared DriveItems" page.
    expect(shareIdFor('https://onedrive.live.com/redir?resid=1231244193912!12&authKey=1201919!12921!1')).toBe(
      'u!aHR0cHM6Ly9vbmVkcml2ZS5saXZlLmNvbS9yZWRpcj9yZXNpZD0xMjMxMjQ0MTkzOTEyITEyJmF1dGhLZXk9MTIwMTkxOSExMjkyMSEx',
    );
    expect(shareIdFor('https://x/?>>>')).toBe('u!aHR0cHM6Ly94Lz8-Pj4');
    expect(shareIdFor('https://x/??')).toBe('u!aHR0cHM6Ly94Lz8_');

    const { graph } = fakes;
    const webUrl = 'https://contoso.sharepoint.com/sites/Platform/Shared Documents/Deploys/report.csv';
    const file = graph.addSharedFile(webUrl, 'report.csv', 'a,b\n1,2\n');
    expect(file.attachment).toEqual({ contentType: 'reference', contentUrl: webUrl, name: 'report.csv' });
    const auth = { authorization: `Bearer ${await accessToken(GRAPH_SCOPE)}` };

    const item = (await (
      await fetch(`${graph.url}/v1.0/shares/${shareIdFor(webUrl)}/driveItem`, { headers: auth })
    ).json()) as Record<string, unknown>;
    expect(item).toMatchObject({ id: file.id, name: 'report.csv', size: 8, file: { mimeType: 'text/csv' } });
    const download = await fetch(item['@microsoft.graph.downloadUrl'] as string);
    expect(download.headers.get('content-length')).toBe('8');
    expect(await download.text()).toBe('a,b\n1,2\n');

    const content = await fetch(`${graph.url}/v1.0/shares/${file.shareId}/driveItem/content`, {
      headers: auth,
      redirect: 'manual',
    });
    expect(content.status).toBe(302);
    expect(content.headers.get('location')).toBe(file.downloadUrl);

    const unknown = await fetch(
      `${graph.url}/v1.0/shares/${shareIdFor('https://contoso.sharepoint.com/nope')}/driveItem`,
      {
        headers: auth,
      },
    );
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: { code: 'itemNotFound' } });

    const wrongAudience = await fetch(`${graph.url}/v1.0/shares/${file.shareId}/driveItem`, {
      headers: { authorization: `Bearer ${await accessToken(BOT_FRAMEWORK_SCOPE)}` },
    });
    expect(wrongAudience.status).toBe(401);
    expect(await wrongAudience.json()).toMatchObject({ error: { code: 'InvalidAuthenticationToken' } });
  });

  it('answers checkMemberGroups with the groups a person is in', async () => {
    const { graph } = fakes;
    const megan = teamsUser('Megan Bowen');
    graph.addGroupMember('g-approvers', megan.aadObjectId);
    graph.addGroupMember('g-admins', 'someone-else');
    const res = await fetch(`${graph.url}/v1.0/users/${megan.aadObjectId}/checkMemberGroups`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await accessToken(GRAPH_SCOPE)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ groupIds: ['g-approvers', 'g-admins', 'g-unknown'] }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { value: string[] }).value).toEqual(['g-approvers']);
    expect(graph.checkMemberGroupsCount).toBe(1);
  });
});

describe('FakeTeamsFiles', () => {
  it('serves personal-chat downloads and takes a chunked upload session like OneDrive', async () => {
    const { files } = fakes;
    const dl = files.addDownload('notes.txt', 'hello');
    expect(dl.attachment).toMatchObject({
      contentType: 'application/vnd.microsoft.teams.file.download.info',
      name: 'notes.txt',
      content: { downloadUrl: dl.downloadUrl, fileType: 'txt' },
    });
    expect(await (await fetch(dl.downloadUrl)).text()).toBe('hello');

    const info = files.newUploadSession('result.bin');
    const bytes = Buffer.alloc(320 * 1024 + 10, 7);
    const put = (from: number, to: number, headers: Record<string, string> = {}) =>
      fetch(info.uploadUrl, {
        method: 'PUT',
        headers: { 'content-range': `bytes ${from}-${to - 1}/${bytes.length}`, ...headers },
        body: bytes.subarray(from, to),
      });

    expect((await put(0, 10, { authorization: 'Bearer x' })).status).toBe(401);
    expect((await put(0, 10)).status).toBe(400); // not a multiple of 320 KiB
    const partial = await put(0, 320 * 1024);
    expect(partial.status).toBe(202);
    expect(((await partial.json()) as { nextExpectedRanges: string[] }).nextExpectedRanges).toEqual([
      `${320 * 1024}-${bytes.length - 1}`,
    ]);
    expect((await put(5, bytes.length)).status).toBe(416);
    const done = await put(320 * 1024, bytes.length);
    expect(done.status).toBe(201);
    expect(await done.json()).toMatchObject({ name: 'result.bin', size: bytes.length });
    expect(files.uploaded(info.uniqueId)?.equals(bytes)).toBe(true);
    expect(files.uploads.get(info.uniqueId)?.fragments).toBe(2);
  });
});

describe('TeamsSender', () => {
  let bot: Server;
  const received: Array<{ authorization?: string; activity: TeamsActivity }> = [];

  beforeAll(async () => {
    bot = createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({
          authorization: req.headers.authorization,
          activity: JSON.parse(Buffer.concat(chunks).toString('utf8')) as TeamsActivity,
        });
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ statusCode: 200 }));
      });
    });
    await new Promise<void>((r) => bot.listen(0, '127.0.0.1', r));
  });

  afterAll(async () => {
    bot.closeAllConnections();
    await new Promise<void>((r) => bot.close(() => r()));
  });

  it('posts Teams-shaped activities with a channel token whose serviceurl matches', async () => {
    const sender = fakes.sender(`http://127.0.0.1:${(bot.address() as AddressInfo).port}`);
    const team = teamsTeam('Platform');
    const channel = teamsChannel(team, 'Deploys');
    const megan = teamsUser('Megan Bowen');

    const post = sender.channelMention({ team, channel, from: megan, text: 'deploy the thing' });
    expect(await sender.send(post)).toEqual({ status: 200, body: { statusCode: 200 } });
    const got = received.at(-1)!;
    expect(got.activity).toMatchObject({
      type: 'message',
      channelId: 'msteams',
      serviceUrl: fakes.connector.url,
      text: '<at>Handoff</at> deploy the thing',
      from: { id: megan.id, name: 'Megan Bowen', aadObjectId: megan.aadObjectId },
      recipient: { id: `28:${fakes.appId}`, name: 'Handoff' },
      conversation: { id: `${channel.id};messageid=${post.id}`, conversationType: 'channel', isGroup: true },
      channelData: { team: { id: team.id }, channel: { id: channel.id }, tenant: { id: fakes.tenantId } },
      entities: [
        { type: 'mention', text: '<at>Handoff</at>', mentioned: { id: `28:${fakes.appId}`, name: 'Handoff' } },
        {},
      ],
    });
    const jwks = createRemoteJWKSet(new URL(fakes.entra.jwksUri));
    const { payload } = await jwtVerify(got.authorization!.slice('Bearer '.length), jwks, { audience: fakes.appId });
    expect(payload.serviceurl).toBe(fakes.connector.url);

    const reply = sender.channelMention({ team, channel, from: megan, text: 'and again', replyToRoot: post.id });
    expect(reply.conversation.id).toBe(post.conversation.id);
    expect(reply.replyToId).toBe(post.id);

    const click = sender.actionExecute({
      conversation: post,
      from: megan,
      replyToId: '1733200000001',
      verb: 'approve',
      data: { plan: 'p1' },
    });
    expect(click).toMatchObject({
      type: 'invoke',
      name: 'adaptiveCard/action',
      replyToId: '1733200000001',
      value: { action: { type: 'Action.Execute', verb: 'approve', data: { plan: 'p1' } }, trigger: 'manual' },
      channelData: { channel: { id: channel.id } },
    });
    const dm = sender.personalMessage({ from: megan, text: 'hi' });
    expect(dm.conversation).toMatchObject({
      conversationType: 'personal',
      id: personalConversationId(fakes.appId, megan.id),
    });

    await sender.send(dm, { token: null });
    expect(received.at(-1)!.authorization).toBeUndefined();
  });
});
