import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { newTask, type Task } from '../../src/core/index.ts';
import { StateStore } from '../../src/storage/index.ts';
import { FakeSlack, SlackSender } from '../fakes/slack-server.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const botToken = 'xoxb-4242-follow-up-test';
const signingSecret = 'slack-signing-secret-for-follow-ups';
const ana = { id: 'UANA', name: 'Ana' }; // requester
const dan = { id: 'UDAN', name: 'Dan' }; // not an approver

/**
 * Thread replies on Slack when no run is live: the real Bolt app over HTTP against the
 * fake Slack Web API, tasks as fixtures in a real Redis.
 */
describeDocker('Slack: replies in a task thread after the run (follow-ups and notices)', () => {
  let fake: FakeSlack;
  let handoff: TestHandoff;
  let slack: SlackSender;
  let redis: Redis;
  let state: StateStore;
  let seq = 0;
  const newTs = () => `${Math.floor(Date.now() / 1000)}.${String(700_000 + ++seq)}`;

  beforeAll(async () => {
    fake = new FakeSlack({ botToken, users: { UANA: { name: 'Ana' }, UBEN: { name: 'Ben' }, UDAN: { name: 'Dan' } } });
    await fake.start();
    handoff = await startDevHandoff({
      env: {
        SLACK_BOT_TOKEN: botToken,
        SLACK_SIGNING_SECRET: signingSecret,
        SLACK_API_URL: fake.apiUrl,
        SLACK_APPROVERS: JSON.stringify({ C1: ['UBEN'] }),
      },
    });
    slack = new SlackSender(handoff.url, signingSecret);
    redis = new Redis(handoff.redisUrl);
    state = new StateStore(redis);
  }, 60_000);
  afterAll(async () => {
    redis?.disconnect();
    await handoff?.close();
    await fake?.close();
  });

  /** A task in `state` in its own thread of C1, as the runner would have left it. */
  async function fixture(end: Task['state']): Promise<{ task: Task; thread: string }> {
    const thread = newTs();
    const conversation = { surface: 'slack' as const, channel: 'C1', thread };
    const task = newTask(
      { id: `t_fu${seq}`, conversation, requester: ana, request: 'make the report', inputs: [], demo: true },
      new Date(),
    );
    await state.createTask(task);
    await state.linkThread('slack', 'C1', thread, task.id);
    const { after } = await state.updateTask(task.id, (t) => ({
      ...t,
      state: end,
      planVersion: 1,
      finishedAt: new Date().toISOString(),
    }));
    await state.expireTaskRecords(after);
    return { task: after, thread };
  }

  const say = (user: { id: string }, thread: string, text: string) =>
    slack.event({
      type: 'message',
      channel: 'C1',
      channel_type: 'channel',
      user: user.id,
      text,
      ts: newTs(),
      thread_ts: thread,
    });
  const posted = (thread: string, words: string) =>
    fake.waitFor(`"${words}" in the thread`, () =>
      fake
        .callsOf('chat.postMessage')
        .find((c) => c.args.thread_ts === thread && JSON.stringify(c.args).includes(words)),
    );
  const postsIn = (thread: string) => fake.callsOf('chat.postMessage').filter((c) => c.args.thread_ts === thread);

  it('a reply after the delivery from someone else is refused clearly, once; the requester follows up', async () => {
    const { task, thread } = await fixture('succeeded');
    expect((await say(dan, thread, 'add Q5 too')).status).toBe(200);
    await posted(thread, 'Only Ana (who asked) or an approver can follow up on this task');
    // Told once: a second message from Dan is not answered again.
    await say(dan, thread, 'hello?');
    await say(ana, thread, 'add Q4');
    await posted(thread, 'Follow-up from Ana: drafting plan version 2');
    expect(postsIn(thread).filter((c) => JSON.stringify(c.args).includes('Only Ana'))).toHaveLength(1);
    const now = JSON.parse((await redis.get(`hf:task:${task.id}`))!) as Task;
    expect(now.state).not.toBe('succeeded');
    expect(now.followUps).toMatchObject([{ fromVersion: 1, by: { id: 'UANA' }, text: 'add Q4' }]);
  }, 60_000);

  it('a reply in a denied task thread gets a clear answer; a mention there starts a new task', async () => {
    const { task, thread } = await fixture('denied');
    await say(ana, thread, 'why?');
    await posted(thread, 'This task was denied: nothing more runs in it. To start a new task, mention @handoff');
    const res = await slack.event({
      type: 'app_mention',
      user: ana.id,
      text: '<@UBOT> make the report again',
      ts: newTs(),
      channel: 'C1',
      thread_ts: thread,
    });
    expect(res.status).toBe(200);
    await posted(thread, 'Planning');
    const linked = await redis.get(`hf:thread:slack:C1:${thread}`);
    expect(linked).not.toBe(task.id);
    expect(linked).toMatch(/^t_/);
  }, 60_000);

  it('a follow-up whose delivered files are gone is refused clearly and changes nothing', async () => {
    const { task, thread } = await fixture('succeeded');
    // The record is still there, but the delivered file is no longer in the artifact store.
    await state.updateTask(task.id, (t) => ({
      ...t,
      artifacts: [
        {
          name: 'report.csv',
          mediaType: 'text/csv',
          size: 10,
          sha256: '0'.repeat(64),
          key: `tasks/${task.id}/out/gone-report.csv`,
          createdAt: new Date().toISOString(),
        },
      ],
    }));
    await say(ana, thread, 'add Q4');
    await posted(thread, 'The files of this task are no longer kept, so it cannot be continued');
    const now = JSON.parse((await redis.get(`hf:task:${task.id}`))!) as Task;
    expect(now.state).toBe('succeeded');
    expect(now.planVersion).toBe(1);
    expect(now.followUps).toBeUndefined();
  }, 60_000);

  it('a reply in the thread of an expired task says so and offers a new task', async () => {
    const { task, thread } = await fixture('succeeded');
    // Retention is over: the records are gone, the thread's tombstone is left.
    await redis.del(`hf:task:${task.id}`, `hf:thread:slack:C1:${thread}`);
    await say(ana, thread, 'make the chart a line chart');
    await posted(thread, 'The task in this thread has expired');
    await posted(thread, 'mention @handoff with what you need');
  }, 60_000);
});
