/**
 * The demo model's deck sample, end to end: notes in, the pptx skill loaded, its script run
 * from the read-only /skills mount, and a 5-slide deck with speaker notes out, opened here.
 */
import { readFile } from 'node:fs/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ConsoleClient, links, planButtons } from '../helpers/console-client.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';
import { unzip } from '../helpers/office.ts';

describeDocker('demo model: notes into a 5-slide deck with the pptx skill', () => {
  let handoff: TestHandoff;
  let client: ConsoleClient;

  beforeAll(async () => {
    handoff = await startDevHandoff();
    client = new ConsoleClient(handoff.url);
  });
  afterAll(async () => {
    await handoff?.close();
  });

  it('loads the skill, runs its script and delivers deck.pptx with 5 slides and speaker notes', async () => {
    const notes = await readFile(new URL('../../examples/deck-notes.md', import.meta.url));
    const posted = await client.post('@handoff turn these notes into a 5-slide deck', [
      { name: 'deck-notes.md', content: notes },
    ]);
    expect(posted.status).toBe(201);
    const thread = posted.body.message!.id;
    const card = await client.waitForCard(thread, (h) => h.includes('card plan'));
    expect(card.html).toContain('deck.pptx');
    expect(card.html).toContain('demo model');
    const { taskId } = planButtons(card.html!);
    expect((await client.action({ action: 'approve', ...planButtons(card.html!) })).status).toBe(200);

    const result = await client.waitForCard(thread, (h) => h.includes('card result'), 180_000);
    expect(result.html).toContain('Done');
    expect(result.html).toContain('5 slides');
    const [file] = links(result.html!);
    expect(file?.name).toBe('deck.pptx');
    const bytes = Buffer.from(await (await fetch(new URL(file!.href, handoff.url))).arrayBuffer());
    const entries = unzip(bytes);
    const names = [...entries.keys()];
    expect(names.filter((n) => /^ppt\/slides\/slide\d+\.xml$/.test(n))).toHaveLength(5);
    const notesSlides = names.filter((n) => /^ppt\/notesSlides\/notesSlide\d+\.xml$/.test(n));
    expect(notesSlides).toHaveLength(5);
    expect(entries.get('ppt/slides/slide1.xml')!.toString('utf8')).toContain('Pulse 2.0 launch update');
    expect(notesSlides.map((n) => entries.get(n)!.toString('utf8')).join('')).toContain(
      'Ask for a decision on whether Teams alerts stay behind the beta flag',
    );
    expect(names.some((n) => /^ppt\/charts\/chart\d+\.xml$/.test(n))).toBe(true);

    const redis = new Redis(handoff.redisUrl);
    const audit = (await redis.lrange('hf:audit', 0, -1)).map((r) => JSON.parse(r)).filter((r) => r.taskId === taskId);
    redis.disconnect();
    expect(audit.filter((r) => r.type === 'skill.load').map((r) => r.data)).toEqual([
      expect.objectContaining({ skill: 'pptx', source: 'built-in', ok: true }),
    ]);
  }, 240_000);
});
