import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  type ActivityJson,
  activityText,
  cardExecutes,
  cardOf,
  startTeamsFakes,
  type TeamsActivity,
  type TeamsFakes,
  type TeamsMessage,
  type TeamsSender,
  teamsChannel,
  teamsTeam,
  teamsUser,
} from '../fakes/teams-server.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';
import { readXlsx } from '../helpers/office.ts';

const salesCsv = await readFile(new URL('../../examples/sales.csv', import.meta.url));

const ana = teamsUser('Ana'); // requester
const ben = teamsUser('Ben'); // approver by Entra object id
const cleo = teamsUser('Cleo'); // approver through an Entra group (Graph)
const dan = teamsUser('Dan'); // not an approver
const team = teamsTeam('Finance');
const general = teamsChannel(team, 'General');
const reports = teamsChannel(team, 'Reports');
const financeGroup = 'a6c9f0e2-1b2c-4d3e-8f90-123456789abc';

// General: Ben approves. Reports: members of the Entra group approve (resolved through Graph).
// Personal chats: the requester may approve their own plan (nobody else is in the chat).
const policyYaml = `version: 1
channels:
  "teams:${team.id}/${general.id}":
    approvers:
      users: [${ben.aadObjectId}]
  "teams:${reports.id}":
    approvers:
      groups: [${financeGroup}]
  "teams:a:*":
    requesterMayApprove: true
`;

const executes = cardExecutes;
const textOf = (m: TeamsMessage) => activityText(m.activity);

describeDocker('Teams surface: CloudAdapter, Adaptive Cards, fake Bot Connector, real sandbox', () => {
  let fakes: TeamsFakes;
  let handoff: TestHandoff;
  let teams: TeamsSender;
  let redis: Redis;
  let policyDir: string;

  const audited = async (taskId: string, type: string) =>
    (await redis.lrange('hf:audit', 0, -1))
      .map((r) => JSON.parse(r) as { taskId?: string; type: string })
      .filter((r) => r.taskId === taskId && r.type === type).length;

  async function planCard(conversationId: string, version = 1): Promise<TeamsMessage> {
    return fakes.connector.waitForMessage(
      (m) =>
        m.conversationId === conversationId &&
        textOf(m).includes(`Plan v${version}`) &&
        executes(cardOf(m)).some((e) => e.verb === 'plan.approve' || e.verb === 'refresh'),
      120_000,
      `plan card v${version}`,
    );
  }

  async function click(
    place: TeamsActivity,
    card: TeamsMessage,
    who: ReturnType<typeof teamsUser>,
    verb: string,
    data?: Record<string, unknown>,
  ) {
    const res = await teams.click(place, card, who, verb, data);
    expect(res.status).toBe(200);
    return { body: { type: res.type, value: res.card }, text: res.text };
  }

  beforeAll(async () => {
    fakes = await startTeamsFakes();
    fakes.graph.addGroupMember(financeGroup, cleo.aadObjectId);
    policyDir = await mkdtemp(join(tmpdir(), 'handoff-teams-policy-'));
    await writeFile(join(policyDir, 'policy.yaml'), policyYaml);
    handoff = await startDevHandoff({
      env: {
        HANDOFF_POLICY: join(policyDir, 'policy.yaml'),
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
    await fakes?.close();
    if (policyDir) await rm(policyDir, { recursive: true, force: true });
  });

  it('channel: mention with a SharePoint file → plan card → refusals → approve once → sandboxed run → result card', async () => {
    const shared = fakes.graph.addSharedFile(
      'https://contoso.sharepoint.com/sites/finance/Shared%20Documents/sales.csv',
      'sales.csv',
      salesCsv,
    );
    const post = teams.channelMention({
      team,
      channel: general,
      from: ana,
      text: 'summarise the attached sales CSV into a spreadsheet with a totals sheet and a chart',
      attachments: [shared.attachment],
    });
    expect((await teams.send(post)).status).toBe(200);
    const thread = `${general.id};messageid=${post.id}`;
    await fakes.connector.waitForMessage(
      (m) => m.conversationId === thread && textOf(m).includes('1 file received'),
      15_000,
      'the acknowledgement',
    );
    const plan = await planCard(thread);
    const base = cardOf(plan);
    // Approvers are named: everyone's card has no decision, Teams refreshes it for the listed people.
    expect(executes(base).map((e) => e.verb)).toEqual(['refresh']);
    expect((base.refresh as { userIds: string[] }).userIds).toContain(ana.id);
    expect(base.version).toBe('1.5');

    // Ben's own version of the card (a refresh) has the buttons; Dan's does not.
    const bens = await click(post, plan, ben, 'refresh');
    expect(executes(bens.body.value).map((e) => e.verb)).toEqual(['plan.approve', 'plan.deny', 'plan.changes']);
    const dans = await click(post, plan, dan, 'refresh');
    expect(executes(dans.body.value).map((e) => e.verb)).toEqual([]);

    // A non-approver's Approve is refused on the card; the message everyone sees is unchanged.
    const approve = executes(bens.body.value).find((e) => e.verb === 'plan.approve')!.data;
    const edits = fakes.connector.message(plan.id)!.edits;
    const refused = await click(post, plan, dan, 'plan.approve', approve);
    expect(refused.text).toContain('you are not an approver here');
    expect(fakes.connector.message(plan.id)!.edits).toBe(edits);
    // The requester cannot approve her own plan here.
    expect((await click(post, plan, ana, 'plan.approve', approve)).text).toContain(
      'you cannot approve your own request',
    );

    // Ben approves: the card changes in place for everyone; a second click runs nothing more.
    const ok = await click(post, plan, ben, 'plan.approve', approve);
    expect(ok.text).toContain('Approved: the run is queued.');
    const updated = await fakes.connector.waitFor(
      () => {
        const m = fakes.connector.message(plan.id)!;
        return m.edits > edits && textOf(m).includes('Approved by Ben') ? m : undefined;
      },
      10_000,
      'the plan card edited for everyone',
    );
    expect(executes(cardOf(updated))).toEqual([]);
    const again = await click(post, plan, ben, 'plan.approve', approve);
    expect(again.text).toContain('already approved');

    // The run: progress edited in place, then the result card with the spreadsheet's link.
    const result = await fakes.connector.waitForMessage(
      (m) => m.conversationId === thread && textOf(m).includes('Done') && textOf(m).includes('sales-summary.xlsx'),
      180_000,
      'the result card',
    );
    const link = JSON.stringify(cardOf(result)).match(/"url":"(http[^"]+sales-summary\.xlsx[^"]*)"/)?.[1];
    expect(link).toBeDefined();
    const xlsx = Buffer.from(await (await fetch(link!.replace(/\\u0026/g, '&'))).arrayBuffer());
    const book = await readXlsx(xlsx);
    expect(book.sheets.length).toBeGreaterThan(0);
    const taskId = String(approve.taskId);
    // Two approving clicks, one decision and one run.
    expect(await audited(taskId, 'plan.approved')).toBe(1);
    expect(await audited(taskId, 'run.started')).toBe(1);

    // A typing indicator while it ran.
    expect(fakes.connector.typingCount(thread)).toBeGreaterThan(0);
    // Progress edits of one message never came closer than the edit interval allows.
    const progressUpdates = fakes.connector
      .callsOf('updateActivity')
      .filter((c) => c.conversationId === thread && JSON.stringify(c.body).includes('Cancel'))
      .map((c) => c.at);
    for (let i = 1; i < progressUpdates.length; i++)
      expect(progressUpdates[i]! - progressUpdates[i - 1]!).toBeGreaterThanOrEqual(950);
  }, 300_000);

  it('a stale plan version is refused on the card; an Entra group member (Graph) may approve', async () => {
    const post = teams.channelMention({
      team,
      channel: reports,
      from: ana,
      text: 'summarise the attached sales CSV into a spreadsheet with a totals sheet and a chart',
      attachments: [
        fakes.graph.addSharedFile('https://contoso.sharepoint.com/sites/finance/r/sales.csv', 'sales.csv', salesCsv)
          .attachment,
      ],
    });
    expect((await teams.send(post)).status).toBe(200);
    const thread = `${reports.id};messageid=${post.id}`;
    const v1 = await planCard(thread);
    // Groups cannot be listed for a refresh: everyone gets the buttons, the bot checks who clicks.
    const v1Approve = executes(cardOf(v1)).find((e) => e.verb === 'plan.approve')!.data;
    const changes = await click(post, v1, ana, 'plan.changes', {
      ...executes(cardOf(v1)).find((e) => e.verb === 'plan.changes')!.data,
      changes: 'also add a chart of the totals',
    });
    expect(changes.text).toContain('Changes requested');
    const v2 = await planCard(thread, 2);
    const stale = await click(post, v1, cleo, 'plan.approve', v1Approve);
    expect(stale.text).toMatch(/outdated plan version|already|not waiting/);
    const dan2 = await click(post, v2, dan, 'plan.approve');
    expect(dan2.text).toContain('you are not an approver here');
    const cleo2 = await click(post, v2, cleo, 'plan.approve');
    expect(cleo2.text).toContain('Approved');
    expect(fakes.graph.checkMemberGroupsCount).toBeGreaterThanOrEqual(1);
    // Cancel it: it need not run to the end here.
    const progress = await fakes.connector.waitForMessage(
      (m) => m.conversationId === thread && executes(cardOf(m)).some((e) => e.verb === 'task.cancel'),
      120_000,
      'a progress card with Cancel',
    );
    const cancel = await click(post, progress, ana, 'task.cancel');
    expect(cancel.text).toMatch(/Cancel/);
  }, 300_000);

  it('personal chat: a file from downloadUrl, self-approval by policy, FileConsent upload of the deliverable', async () => {
    const file = fakes.files.addDownload('sales.csv', salesCsv);
    const msg = teams.personalMessage({
      from: ana,
      text: 'summarise the attached sales CSV into a spreadsheet with a totals sheet and a chart',
      attachments: [file.attachment],
    });
    expect((await teams.send(msg)).status).toBe(200);
    const chat = msg.conversation.id;
    const plan = await planCard(chat);
    const ok = await click(msg, plan, ana, 'plan.approve');
    expect(ok.text).toContain('Approved');
    const consent = await fakes.connector.waitForMessage(
      (m) =>
        m.conversationId === chat &&
        ((m.activity.attachments ?? []) as ActivityJson[]).some(
          (a) => a.contentType === 'application/vnd.microsoft.teams.card.file.consent',
        ),
      180_000,
      'a FileConsent card',
    );
    const attachment = (consent.activity.attachments as ActivityJson[])[0]!;
    const content = attachment.content as { acceptContext: unknown; sizeInBytes: number };
    const session = fakes.files.newUploadSession(String(attachment.name));
    const res = await teams.send(
      teams.fileConsent({
        conversation: msg,
        from: ana,
        replyToId: consent.id,
        action: 'accept',
        context: content.acceptContext,
        uploadInfo: session,
      }),
    );
    expect(res.status).toBe(200);
    const info = await fakes.connector.waitForMessage(
      (m) =>
        m.conversationId === chat &&
        ((m.activity.attachments ?? []) as ActivityJson[]).some(
          (a) => a.contentType === 'application/vnd.microsoft.teams.card.file.info',
        ),
      30_000,
      'the file card after the upload',
    );
    expect(info).toBeDefined();
    const uploaded = fakes.files.uploaded(session.uniqueId);
    expect(uploaded?.length).toBe(content.sizeInBytes);
  }, 300_000);

  it('"Hand off…" on a message: that message becomes the request, answered in its thread', async () => {
    const root = teams.channelMention({
      team,
      channel: general,
      from: dan,
      text: 'numbers for Q3 attached',
      mention: false,
    });
    const action = teams.messageExtensionAction({
      conversation: root,
      from: ana,
      commandId: 'handoff',
      messagePayload: { id: root.id, content: '<p>Can someone total the Q3 numbers?</p>', author: dan },
      data: { request: 'total these numbers' },
    });
    const res = await teams.send(action);
    expect(res.status).toBe(200);
    const thread = `${general.id};messageid=${root.id}`;
    const ack = await fakes.connector.waitForMessage(
      (m) => m.conversationId === thread && /Planning|Not taken/.test(textOf(m)),
      15_000,
      'the answer in the message’s thread',
    );
    expect(textOf(ack)).toContain('Planning');
  });

  it('a scheduled brief posts a new conversation in the channel', async () => {
    const post = teams.channelMention({
      team,
      channel: general,
      from: ana,
      text: 'every weekday at 9:00 Europe/Berlin: a sales brief from the attached CSV',
      attachments: [
        fakes.graph.addSharedFile('https://contoso.sharepoint.com/sites/finance/b/sales.csv', 'sales.csv', salesCsv)
          .attachment,
      ],
    });
    expect((await teams.send(post)).status).toBe(200);
    const thread = `${general.id};messageid=${post.id}`;
    const plan = await planCard(thread);
    expect(textOf(plan)).toContain('every weekday');
    const approve = executes((await click(post, plan, ben, 'refresh')).body.value).find(
      (e) => e.verb === 'plan.approve',
    )!;
    const ok = await click(post, plan, ben, 'plan.approve', approve.data);
    // Card text escapes markdown: `s\_…` is the id `s_…`.
    const scheduleId = /schedule (s[\\_A-Za-z0-9-]+) is active/.exec(ok.text)?.[1]?.replace(/\\/g, '');
    expect(scheduleId).toBeDefined();
    const created = fakes.connector.conversations.length;
    const run = await click(post, plan, ben, 'schedule.act', { scheduleId, action: 'run_now' });
    expect(run.text).toMatch(/Running|run/i);
    await fakes.connector.waitFor(
      () => fakes.connector.conversations.length > created || undefined,
      30_000,
      'a new post',
    );
    const brief = await fakes.connector.waitForMessage(
      (m) => m.conversationId.startsWith(`${general.id};messageid=`) && textOf(m).includes('sales-brief'),
      180_000,
      'the brief',
    );
    expect(textOf(brief)).toContain('sales-brief.md');

    // Edit from a card: a new time applies at once; a new request opens its own post for approval.
    const retimed = await click(post, plan, ana, 'schedule.act', {
      scheduleId,
      action: 'edit',
      [`edit.when.${scheduleId}`]: 'every Monday at 8:00',
    });
    expect(retimed.text).toContain('Changed: now every Monday at 08:00 (Europe/Berlin)');
    const posts = fakes.connector.conversations.length;
    const rewritten = await click(post, plan, ana, 'schedule.act', {
      scheduleId,
      action: 'edit',
      [`edit.request.${scheduleId}`]: 'a sales brief with the top three regions',
    });
    expect(rewritten.text).toContain('The new request needs approval');
    await fakes.connector.waitFor(
      () => fakes.connector.conversations.length > posts || undefined,
      30_000,
      'a post for the new request',
    );
    await fakes.connector.waitForMessage(
      (m) => m.conversationId.startsWith(`${general.id};messageid=`) && textOf(m).includes('proposes a new request'),
      30_000,
      'the new request’s post',
    );
  }, 300_000);
});
