/**
 * Thread context on Microsoft Teams: a mention in a channel thread takes the thread's root
 * and replies (read through the fake Graph with the bot's app-only token and the team's
 * resource-specific consent) to the planner, through the real Agents SDK, the real
 * Anthropic SDK against the fake Messages API, and a real Redis.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ClientCredentials } from '../../src/bot/surfaces/teams/teams-auth.ts';
import { readTeamsContext } from '../../src/bot/surfaces/teams/teams-context.ts';
import { type FakeAnthropicServer, type MessagesRequestBody, startFakeAnthropic } from '../fakes/anthropic-server.ts';
import {
  activityText,
  startTeamsFakes,
  type TeamsActivity,
  type TeamsFakes,
  type TeamsMessage,
  type TeamsSender,
  type TeamsUser,
  teamsChannel,
  teamsTeam,
  teamsUser,
} from '../fakes/teams-server.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const ana = teamsUser('Ana');
const ben = teamsUser('Ben');
const cal = teamsUser('Cal');
const dan = teamsUser('Dan');
const finance = teamsTeam('Finance');
const general = teamsChannel(finance, 'General');
const reports = teamsChannel(finance, 'Reports');
const offsite = teamsChannel(finance, 'Offsite');
/** A team whose owners never consented to ChannelMessage.Read.Group. */
const legal = teamsTeam('Legal');
const legalGeneral = teamsChannel(legal, 'General');
/** A token someone pasted in the thread: it must reach neither the model nor the task record. */
const pasted = 'xoxp-9999999999-8888888888-SECRETSECRETSECRET';
const jiraAppId = '6f1c2b3a-0d4e-4f5a-9b8c-7d6e5f4a3b2c';

const planReply = {
  content: [
    {
      type: 'tool_use',
      name: 'submit_plan',
      input: {
        summary: 'Summarise the thread in a markdown file.',
        steps: [{ title: 'Write the summary', actions: ['create_files'] }],
        deliverables: [{ name: 'summary.md', type: 'md' }],
      },
    },
  ],
};

/** The planner's first user message: the request with its context. */
function firstUserText(body: MessagesRequestBody | undefined): string {
  const first = (body?.messages as Array<{ role: string; content: unknown }> | undefined)?.[0];
  if (typeof first?.content === 'string') return first.content;
  return ((first?.content ?? []) as Array<{ type: string; text?: string }>)
    .map((b) => (b.type === 'text' ? (b.text ?? '') : ''))
    .join('\n');
}

const textOf = (m: TeamsMessage) => activityText(m.activity);
const person = (u: TeamsUser) => ({ user: { id: u.aadObjectId, displayName: u.name } });

describeDocker('thread context on Teams: real Agents SDK, fake Graph, fake Messages API', () => {
  let fakes: TeamsFakes;
  let model: FakeAnthropicServer;
  let handoff: TestHandoff;
  let teams: TeamsSender;
  let redis: Redis;
  /** Ids of earlier posts: a minute ago and counting, so they are older than any mention. */
  let clock = Date.now() - 60_000;
  const earlier = () => String(++clock);

  beforeAll(async () => {
    fakes = await startTeamsFakes();
    // Finance's owners added the app with its resource-specific consent; Legal's did not.
    fakes.graph.grantChannelMessages(finance.aadGroupId, fakes.appId);
    model = await startFakeAnthropic();
    handoff = await startDevHandoff({
      env: {
        ANTHROPIC_API_KEY: 'sk-ant-test',
        ANTHROPIC_BASE_URL: model.url,
        HANDOFF_THREAD_CONTEXT_MESSAGES: '4',
        ...fakes.handoffEnv({ graph: true }),
      },
    });
    teams = fakes.sender(handoff.url);
    redis = new Redis(handoff.redisUrl);
    redis.on('error', () => undefined);
  }, 60_000);

  afterAll(async () => {
    redis?.disconnect();
    await handoff?.close();
    await model?.close();
    await fakes?.close();
  });

  /** Plans the next request with the scripted plan; resolves with the planner's request body. */
  function planNext(): Promise<MessagesRequestBody> {
    return new Promise((resolve) => {
      model.enqueue((body) => {
        resolve(body);
        return planReply;
      });
    });
  }

  /** Mentions Handoff (as a reply in `root`'s thread when given), posting it in Graph too, as Teams does. */
  async function mention(
    team: typeof finance,
    channel: typeof general,
    text: string,
    root?: string,
  ): Promise<TeamsActivity> {
    const post = teams.channelMention({ team, channel, from: ana, text, ...(root ? { replyToRoot: root } : {}) });
    fakes.graph.addChannelMessage({
      teamId: team.aadGroupId,
      channelId: channel.id,
      id: post.id,
      ...(root ? { replyTo: root } : {}),
      from: person(ana),
      content: `<p><at id="0">Handoff</at>&nbsp;${text}</p>`,
    });
    expect((await teams.send(post)).status).toBe(200);
    return post;
  }

  const planCard = (channel: typeof general, root: string) =>
    fakes.connector.waitForMessage(
      (m) => m.conversationId === `${channel.id};messageid=${root}` && textOf(m).includes('Plan v1'),
      120_000,
      'plan card',
    );

  async function taskIn(
    channel: typeof general,
    root: string,
  ): Promise<{ id: string; context?: { messages: Array<{ author: string; bot?: boolean; text: string }> } }> {
    const taskId = await redis.get(`hf:thread:teams:${finance.id}/${channel.id}:${root}`);
    expect(taskId, 'the task of the thread').toBeTruthy();
    return JSON.parse((await redis.get(`hf:task:${taskId}`))!);
  }

  async function requestedRecord(taskId: string): Promise<{ data: Record<string, unknown> }> {
    const audit = (await redis.lrange('hf:audit', 0, -1)).map((r) => JSON.parse(r));
    return audit.find((r) => r.type === 'task.requested' && r.taskId === taskId);
  }

  it('a mention in a channel thread takes the root and replies to the planner, redacted, without its own messages', async () => {
    const ids = { teamId: finance.aadGroupId, channelId: general.id };
    const root = fakes.graph.addChannelMessage({
      ...ids,
      id: earlier(),
      from: person(ben),
      content: '<p>Q3 numbers: <b>EMEA</b> 1.2M, APAC 0.8M, AMER 2.4M</p>',
    });
    fakes.graph.addChannelMessage({
      ...ids,
      id: earlier(),
      replyTo: root,
      from: person(cal),
      content: `<div>AMER is preliminary.<br>token ${pasted}</div>`,
    });
    // Handoff's own earlier message is left out; another app's is labelled; deleted and system messages are not read.
    fakes.graph.addChannelMessage({
      ...ids,
      id: earlier(),
      replyTo: root,
      from: { application: { id: fakes.appId, displayName: 'Handoff' } },
      content: '<p>Planning… (an earlier Handoff message)</p>',
    });
    fakes.graph.addChannelMessage({
      ...ids,
      id: earlier(),
      replyTo: root,
      from: { application: { id: jiraAppId, displayName: 'Jira' } },
      content: 'FIN-12 moved to Done',
      contentType: 'text',
    });
    fakes.graph.addChannelMessage({
      ...ids,
      id: earlier(),
      replyTo: root,
      from: person(dan),
      content: '<p>a message Dan deleted</p>',
      deleted: true,
    });
    fakes.graph.addChannelMessage({
      ...ids,
      id: earlier(),
      replyTo: root,
      from: person(dan),
      content: '<systemEventMessage/>',
      messageType: 'systemEventMessage',
    });
    const planned = planNext();
    const post = await mention(finance, general, 'put these numbers in a summary', root);
    // A reply posted after the mention is not part of what it refers to.
    fakes.graph.addChannelMessage({
      ...ids,
      id: String(Number(post.id) + 1),
      replyTo: root,
      from: person(cal),
      content: '<p>a later reply</p>',
    });
    const text = firstUserText(await planned);

    expect(text).toContain('<thread_context source="thread" messages="3">');
    expect(text).toContain('<context_message from="Ben"');
    expect(text).toContain('Q3 numbers: EMEA 1.2M, APAC 0.8M, AMER 2.4M');
    expect(text).not.toContain('<b>');
    expect(text).toContain('<context_message from="Cal"');
    expect(text).toContain('AMER is preliminary.\ntoken [redacted:secret]');
    expect(text).toContain('<context_message from="Jira" app="true"');
    expect(text).not.toContain('an earlier Handoff message');
    expect(text).not.toContain('a message Dan deleted');
    expect(text).not.toContain('systemEventMessage');
    expect(text).not.toContain('a later reply');
    expect(text).not.toContain('SECRETSECRETSECRET');
    expect(text.indexOf('</thread_context>')).toBeLessThan(text.indexOf('<request>'));
    expect(text.match(/put these numbers in a summary/g)).toHaveLength(1);

    // Graph was asked with the bot's token for the root and its replies.
    const asked = fakes.graph.calls.filter((c) => c.operation === 'getChannelMessage' || c.operation === 'listReplies');
    expect(asked.map((c) => [c.operation, c.status])).toEqual([
      ['getChannelMessage', 200],
      ['listReplies', 200],
    ]);
    expect(asked[0]!.path).toBe(
      `/v1.0/teams/${finance.aadGroupId}/channels/${encodeURIComponent(general.id)}/messages/${root}`,
    );

    const card = await planCard(general, root);
    expect(textOf(card)).toContain('Used 3 earlier messages from this thread');
    const task = await taskIn(general, root);
    expect(task.context?.messages.map((m) => m.author)).toEqual(['Ben', 'Cal', 'Jira']);
    expect(JSON.stringify(task)).not.toContain('SECRETSECRETSECRET');
    const record = await requestedRecord(task.id);
    expect(record.data.context).toMatchObject({ source: 'thread', messages: 3, omitted: 0, redactions: { secret: 1 } });
    expect(JSON.stringify(record)).not.toContain('AMER is preliminary');
  }, 180_000);

  it('a long thread is read page by page (@odata.nextLink) and only the newest messages within the cap go along', async () => {
    const ids = { teamId: finance.aadGroupId, channelId: reports.id };
    const root = fakes.graph.addChannelMessage({
      ...ids,
      id: earlier(),
      from: person(ben),
      content: '<p>message 0</p>',
    });
    for (let i = 1; i <= 120; i++)
      fakes.graph.addChannelMessage({
        ...ids,
        id: earlier(),
        replyTo: root,
        from: person(cal),
        content: `<p>message ${i}</p>`,
      });
    const before = fakes.graph.callsOf('listReplies').length;
    const planned = planNext();
    await mention(finance, reports, 'summarise the thread', root);
    const text = firstUserText(await planned);
    // 121 replies (the mention is one) at 50 a page: three pages, the next ones through nextLink.
    const pages = fakes.graph.callsOf('listReplies').slice(before);
    expect(pages.map((c) => c.status)).toEqual([200, 200, 200]);
    expect(text).toContain('messages="4"');
    for (const n of [117, 118, 119, 120]) expect(text).toContain(`message ${n}\n`);
    expect(text).not.toContain('message 116\n');
    const card = await planCard(reports, root);
    expect(textOf(card)).toContain('Used 4 earlier messages from this thread (117 older left out)');
  }, 180_000);

  it('a top-level mention pointing "above" takes the channel’s recent posts; a post not mentioning Handoff is ignored', async () => {
    const ids = { teamId: finance.aadGroupId, channelId: offsite.id };
    fakes.graph.addChannelMessage({
      ...ids,
      id: earlier(),
      from: person(ben),
      content: '<p>Budget for the offsite is 40k</p>',
    });
    fakes.graph.addChannelMessage({
      ...ids,
      id: earlier(),
      from: person(cal),
      content: '<p>Venue options: Lisbon, Porto</p>',
    });
    // With the consent, Teams delivers every channel post to the bot: one that does not mention it is not a request.
    const chatter = teams.channelMention({
      team: finance,
      channel: offsite,
      from: dan,
      text: 'summarise this',
      mention: false,
    });
    expect((await teams.send(chatter)).status).toBe(200);
    const planned = planNext();
    const post = await mention(finance, offsite, 'turn the above into a one-pager');
    const text = firstUserText(await planned);
    const listed = fakes.graph.callsOf('listChannelMessages').at(-1);
    expect(listed?.status).toBe(200);
    expect(text).toContain('<thread_context source="channel" messages="2">');
    expect(text.indexOf('Budget for the offsite')).toBeLessThan(text.indexOf('Venue options'));
    const card = await planCard(offsite, post.id);
    expect(textOf(card)).toContain('Used 2 earlier messages from the channel');
    // Nothing answered the post without a mention, and no task was made in its thread.
    expect(fakes.connector.messagesIn(`${offsite.id};messageid=${chatter.id}`)).toEqual([]);
    expect(await redis.get(`hf:thread:teams:${finance.id}/${offsite.id}:${chatter.id}`)).toBeNull();
  }, 180_000);

  it('without the team’s consent Graph answers 403: the request is still planned and the card says why', async () => {
    const root = fakes.graph.addChannelMessage({
      teamId: legal.aadGroupId,
      channelId: legalGeneral.id,
      id: earlier(),
      from: person(ben),
      content: '<p>contract terms in here</p>',
    });
    const planned = planNext();
    await mention(legal, legalGeneral, 'summarise the thread', root);
    const text = firstUserText(await planned);
    expect(fakes.graph.callsOf('getChannelMessage').at(-1)).toMatchObject({ status: 403, error: 'Forbidden' });
    expect(text).not.toContain('<thread_context');
    expect(text).not.toContain('contract terms');
    expect(text).toContain('could not be read; work from the request alone');
    const card = await fakes.connector.waitForMessage(
      (m) => m.conversationId === `${legalGeneral.id};messageid=${root}` && textOf(m).includes('Plan v1'),
      120_000,
      'plan card',
    );
    expect(textOf(card)).toContain('Could not read the earlier messages of this thread');
    expect(textOf(card)).toContain('ChannelMessage.Read.Group');
    const taskId = await redis.get(`hf:thread:teams:${legal.id}/${legalGeneral.id}:${root}`);
    expect((await requestedRecord(taskId!)).data.context).toMatchObject({ messages: 0 });
  }, 180_000);

  it('a thread Graph cannot find (404) is planned without context, and the card says so', async () => {
    const root = fakes.graph.addChannelMessage({
      teamId: finance.aadGroupId,
      channelId: reports.id,
      id: earlier(),
      from: person(ben),
      content: '<p>a post deleted in the meantime</p>',
    });
    fakes.graph.failNext(1, 404, { only: 'getChannelMessage', code: 'NotFound', message: 'Message not found.' });
    const planned = planNext();
    await mention(finance, reports, 'summarise the thread', root);
    const text = firstUserText(await planned);
    expect(text).not.toContain('<thread_context');
    expect(text).toContain('could not be read; work from the request alone');
    const card = await planCard(reports, root);
    expect(textOf(card)).toContain('Could not read the earlier messages of this thread');
    expect(textOf(card)).toContain('cannot find this thread (404)');
  }, 180_000);

  it('a Graph that does not answer in time gives an error, not a hung request', async () => {
    const credentials = new ClientCredentials({
      tokenEndpoint: fakes.entra.tokenEndpoint(),
      clientId: fakes.appId,
      clientSecret: fakes.appPassword,
    });
    const root = fakes.graph.addChannelMessage({
      teamId: finance.aadGroupId,
      channelId: reports.id,
      id: earlier(),
      from: person(ben),
      content: '<p>slow thread</p>',
    });
    fakes.graph.stallNext(1, 'listReplies');
    const read = await readTeamsContext({
      graph: { url: fakes.graph.url, credentials },
      teamId: finance.aadGroupId,
      channelId: reports.id,
      rootId: root,
      mentionId: String(Date.now()),
      maxMessages: 4,
      botAppId: fakes.appId,
      timeoutMs: 500,
    });
    expect(read).toEqual({ source: 'thread', messages: [], error: 'Microsoft Graph did not answer in time' });
    expect(fakes.graph.callsOf('listReplies').at(-1)?.error).toBe('stalled');
  });
});
