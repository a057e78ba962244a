import { describe, expect, it } from 'vitest';
import {
  actionIds,
  connectionActionPattern,
  connectLinkMessage,
  decodeConnectValue,
  renderBlocks,
} from '../../../src/bot/surfaces/slack/block-kit.ts';
import { parseCommand } from '../../../src/bot/surfaces/slack/index.ts';
import {
  type AdaptiveCard,
  cardVerbs,
  connectionsPromptCard,
  messageText,
  parseAction,
  renderCard,
} from '../../../src/bot/surfaces/teams/adaptive-cards.ts';
import { renderHtml } from '../../../src/bot/surfaces/web/render-html.ts';
import { type ConnectionsView, connectLines, connectView } from '../../../src/bot/views.ts';
import { blockKitProblems } from '../../fakes/slack-server.ts';
import { testTask } from '../../helpers/fixtures.ts';

// People and services name themselves: both reach every card, so both must come out as text.
const task = testTask({ id: 't_conn1', requester: { id: 'u_ana', name: 'Ana <b>*Ops*</b>' } });
const title = 'Notes & <Wiki> *[x](http://evil.example)*';
const open = connectView(task, 'notes', title);
const connected = connectView(task, 'notes', title, 'connected', 'Ana <b>*Ops*</b>');
const declined = connectView(task, 'notes', title, 'declined', 'Ana <b>*Ops*</b>');
const signInUrl = 'https://auth.example.com/authorize?client_id=abc&state=s3cr3t-state&code_challenge=xyz';

const list: ConnectionsView = {
  kind: 'connections',
  items: [
    {
      connector: 'notes',
      title,
      connected: true,
      connectedAt: '2025-03-01T09:00:00.000Z',
      expiresAt: '2025-03-01T10:00:00.000Z',
      refreshable: true,
    },
    { connector: 'drive', title: 'Drive', connected: false },
  ],
  demo: false,
};

/** The mrkdwn texts of Slack blocks: what Slack formats (plain_text is shown as written). */
function mrkdwnTexts(blocks: unknown): string {
  const out: string[] = [];
  const visit = (node: unknown) => {
    if (Array.isArray(node)) for (const n of node) visit(n);
    else if (node && typeof node === 'object') {
      const o = node as Record<string, unknown>;
      if (o.type === 'mrkdwn' && typeof o.text === 'string') out.push(o.text);
      for (const v of Object.values(o)) visit(v);
    }
  };
  visit(blocks);
  return out.join('\n');
}

/** Every Action.* in a card, wherever it sits. */
function cardActions(card: AdaptiveCard): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  const visit = (node: unknown) => {
    if (Array.isArray(node)) for (const n of node) visit(n);
    else if (node && typeof node === 'object') {
      const o = node as Record<string, unknown>;
      if (typeof o.type === 'string' && o.type.startsWith('Action.')) out.push(o);
      for (const v of Object.values(o)) visit(v);
    }
  };
  visit(card);
  return out;
}

describe('the Connect card', () => {
  it('says who can connect what, in words every surface shares', () => {
    expect(connectLines(connectView(testTask(), 'notes', 'Notes'))[0]).toBe(
      'Ana: Handoff can use Notes as you once you connect it.',
    );
    expect(connectLines(connectView(testTask(), 'notes', 'Notes'))[1]).toContain(
      'anyone else who connects links their own account',
    );
    expect(connectLines(connectView(testTask(), 'notes', 'Notes', 'connected', 'Ana'))).toEqual([
      'Connected by Ana: Handoff can now use Notes as Ana for this task.',
    ]);
    expect(connectLines(connectView(testTask(), 'notes', 'Notes', 'declined', 'Ana'))[0]).toBe(
      'Ana declined to connect Notes.',
    );
  });

  it('HTML: a Connect button carrying the task and connector, everything escaped, no link', () => {
    const html = renderHtml(open);
    expect(html).toContain(
      '<button type="button" class="connect" data-action="connect" data-task="t_conn1" data-connector="notes">Connect Notes &amp; &lt;Wiki&gt; *[x](http://evil.example)*</button>',
    );
    expect(html).not.toContain('<Wiki>');
    expect(html).not.toContain('<b>');
    expect(html).not.toContain('href=');
    expect(html).toContain('connect-open');
    // Connected: no button any more. Declined: the button stays, to try again.
    expect(renderHtml(connected)).not.toContain('<button');
    expect(renderHtml(connected)).toContain('Connected by Ana &lt;b&gt;');
    expect(renderHtml(declined)).toContain('declined to connect');
    expect(renderHtml(declined)).toContain('data-action="connect"');
  });

  it('Block Kit: a Connect button (an action, not a link), mrkdwn escaped, within limits', () => {
    const m = renderBlocks(open);
    expect(blockKitProblems(m.blocks)).toEqual([]);
    const buttons = m.blocks.flatMap((b) =>
      b.type === 'actions' ? (b.elements as Array<{ action_id?: string; value?: string; url?: string }>) : [],
    );
    expect(buttons).toHaveLength(1);
    expect(buttons[0]).toMatchObject({ action_id: actionIds.connect });
    expect(buttons[0]!.url).toBeUndefined();
    expect(decodeConnectValue(buttons[0]!.value)).toEqual({ taskId: 't_conn1', connector: 'notes' });
    const all = mrkdwnTexts(m.blocks);
    expect(all).toContain('Notes &amp; &lt;Wiki&gt;');
    expect(all).not.toContain('<Wiki>');
    expect(all).not.toContain('<http');
    expect(all).not.toContain('<b>');
    expect(m.text).toContain('Handoff can use');
    const done = renderBlocks(connected);
    expect(done.blocks.some((b) => b.type === 'actions')).toBe(false);
    expect(mrkdwnTexts(done.blocks)).toContain('Connected by Ana &lt;b&gt;');
  });

  it('Adaptive Card: Action.Execute with the task and connector, markdown escaped, no URL on the shared card', () => {
    const card = renderCard(open);
    const actions = cardActions(card);
    expect(actions).toEqual([
      expect.objectContaining({
        type: 'Action.Execute',
        verb: cardVerbs.connect,
        data: { taskId: 't_conn1', connector: 'notes' },
      }),
    ]);
    const json = JSON.stringify(card);
    expect(json).not.toContain('Action.OpenUrl');
    // The link lookalike stays text: its brackets are escaped.
    expect(json).toContain('\\\\[x\\\\](http');
    expect(JSON.stringify(card.body)).not.toContain('*[x](http');
    expect(json).toContain('\\\\*Ops\\\\*');
    expect(json).toContain('\\\\<Wiki\\\\>');
    expect(messageText(open)).toContain('Handoff can use');
    expect(cardActions(renderCard(connected))).toEqual([]);
    expect(cardActions(renderCard(declined)).map((a) => a.verb)).toEqual([cardVerbs.connect]);
  });

  it('Adaptive Card answering one person’s click: their sign-in page as Action.OpenUrl, and Connect again', () => {
    const card = renderCard(open, {
      signIn: { url: signInUrl, title: 'Notes' },
      notice: { text: 'Open it', tone: 'good' },
    });
    const actions = cardActions(card);
    expect(actions[0]).toMatchObject({ type: 'Action.OpenUrl', url: signInUrl, title: 'Open the Notes sign-in page' });
    expect(actions[1]).toMatchObject({ type: 'Action.Execute', verb: cardVerbs.connect });
    expect(JSON.stringify(card)).toContain('for you alone');
    // Only http(s) pages are ever offered.
    const bad = renderCard(open, { signIn: { url: 'javascript:alert(1)', title: 'Notes' } });
    expect(cardActions(bad).some((a) => a.type === 'Action.OpenUrl')).toBe(false);
  });

  it('Slack: the private answer carries the link as a URL button', () => {
    const m = connectLinkMessage({ title: 'Notes', message: 'Open the <sign-in> page.', authorizationUrl: signInUrl });
    expect(blockKitProblems(m.blocks)).toEqual([]);
    const button = m.blocks
      .flatMap((b) => (b.type === 'actions' ? (b.elements as unknown as Array<Record<string, unknown>>) : []))
      .at(0);
    expect(button).toMatchObject({ action_id: actionIds.connectOpen, url: signInUrl });
    expect(JSON.stringify(m.blocks)).toContain('&lt;sign-in&gt;');
  });
});

describe('a person’s connections', () => {
  it('HTML: Disconnect for what is connected, Connect for the rest, facts and names escaped', () => {
    const html = renderHtml(list);
    expect(html).toContain('data-connection-op="disconnect" data-connector="notes">Disconnect</button>');
    expect(html).toContain('data-connection-op="connect" data-connector="drive">Connect Drive</button>');
    expect(html).toContain(
      'connected 2025-03-01 09:00 UTC · access expires 2025-03-01 10:00 UTC · renewed automatically',
    );
    expect(html).not.toContain('<Wiki>');
    expect(renderHtml({ kind: 'connections', items: [], demo: false })).toContain(
      'No connector here acts as each person',
    );
  });

  it('Block Kit: one section per connection with its numbered button', () => {
    const m = renderBlocks(list);
    expect(blockKitProblems(m.blocks)).toEqual([]);
    const ids = m.blocks.flatMap((b) => {
      const accessory = (b as { accessory?: { action_id?: string; value?: string } }).accessory;
      return accessory?.action_id ? [accessory] : [];
    });
    expect(ids.map((a) => a.action_id)).toEqual(['handoff_connection_disconnect_0', 'handoff_connection_connect_1']);
    for (const a of ids) expect(connectionActionPattern.test(a.action_id!)).toBe(true);
    expect(decodeConnectValue(ids[1]!.value)).toEqual({ connector: 'drive' });
    expect(mrkdwnTexts(m.blocks)).not.toContain('<Wiki>');
  });

  it('Adaptive Card: Disconnect and Connect as Action.Execute; a shared conversation gets a button instead', () => {
    const actions = cardActions(renderCard(list));
    expect(actions.map((a) => [a.verb, a.data])).toEqual([
      [cardVerbs.disconnect, { connector: 'notes' }],
      [cardVerbs.connect, { connector: 'drive' }],
    ]);
    expect(cardActions(connectionsPromptCard()).map((a) => a.verb)).toEqual([cardVerbs.connections]);
  });

  it('parses what comes back: Teams verbs, Slack values and the slash command', () => {
    const execute = (verb: string, data: Record<string, unknown>) => ({
      action: { type: 'Action.Execute', verb, data },
    });
    expect(parseAction(execute(cardVerbs.connect, { taskId: 't_1', connector: 'notes' }))).toEqual({
      verb: cardVerbs.connect,
      taskId: 't_1',
      connector: 'notes',
    });
    expect(parseAction(execute(cardVerbs.disconnect, { connector: 'notes' }))).toEqual({
      verb: cardVerbs.disconnect,
      connector: 'notes',
    });
    expect(() => parseAction(execute(cardVerbs.connect, { connector: '../etc' }))).toThrow(/invalid fields: connector/);
    expect(decodeConnectValue('{"c":"Notes!"}')).toBeUndefined();
    expect(decodeConnectValue('{"c":"notes","t":"a b"}')).toBeUndefined();
    expect(parseCommand('connections')).toEqual({ kind: 'connections' });
    expect(parseCommand('Connections list')).toEqual({ kind: 'connections' });
    expect(parseCommand('connections of the sales team to the CRM')).toEqual({ kind: 'request' });
  });
});
