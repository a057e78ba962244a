import type { Context, Hono } from 'hono';
import { z } from 'zod';
import { ErrorCodes, HandoffError, type Identity } from '../../../core/index.ts';
import type { ChannelSettingsView } from '../../channel-settings.ts';
import type { HandoffInbound } from '../../inbound.ts';
import { payloadTooLarge, readBodyWithin } from '../../read-body.ts';
import { asUnavailable } from '../../unavailable.ts';

type Env = { Variables: { who: Identity | undefined } };

/** What the console routes file lends these routes. */
export interface ChannelSettingsRouteHelpers {
  gateway: HandoffInbound;
  /** Answers an error as JSON with its status. */
  fail: (c: Context, err: unknown) => Response;
  /** Why this person may not use the channel, or undefined. */
  channelRefusal: (c: Context<Env>, channel: string) => HandoffError | undefined;
  /** The signed-in person, else the typed name. */
  identity: (c: Context<Env>, typed: unknown) => Identity;
  maxBodyBytes: number;
}

const ChangeSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('set_instructions'), text: z.string().max(20_000) }),
  z.object({ op: z.literal('clear_instructions') }),
  z.object({ op: z.literal('remember'), text: z.string().max(20_000) }),
  z.object({ op: z.literal('forget'), factId: z.string().min(1).max(40) }),
  z.object({ op: z.enum(['accept', 'dismiss']), proposalId: z.string().min(1).max(40) }),
]);
const BodySchema = z.object({ channel: z.string().min(1).max(100), author: z.string().optional() }).passthrough();

/**
 * The console's channel settings: `GET /api/console/channel-settings?channel=…` lists the
 * channel's instructions, memory and open proposals; `POST` changes them (`op`:
 * set_instructions, clear_instructions, remember, forget, accept, dismiss). Who may do what
 * is decided by the gateway: these routes only authenticate and validate.
 */
export function registerChannelSettingsRoutes(app: Hono<Env>, h: ChannelSettingsRouteHelpers): void {
  app.get('/api/console/channel-settings', async (c) => {
    try {
      const channel = c.req.query('channel') ?? 'general';
      const refused = h.channelRefusal(c, channel);
      if (refused) throw refused;
      const who = h.identity(c, c.req.query('author'));
      const view = await h.gateway.channelSettings.view({ surface: 'web', channel }, who);
      return c.json({ settings: view, html: channelSettingsHtml(view) }, 200, { 'cache-control': 'no-store' });
    } catch (err) {
      return h.fail(c, asUnavailable(err));
    }
  });

  app.post('/api/console/channel-settings', async (c) => {
    try {
      const raw = await readBodyWithin(c.req.raw, h.maxBodyBytes);
      if (!raw) return payloadTooLarge(`a change is at most ${h.maxBodyBytes / 1024} KB`, true);
      let json: unknown;
      try {
        json = JSON.parse(raw.toString('utf8'));
      } catch {
        throw new HandoffError(ErrorCodes.invalidInput, 'malformed change: send JSON');
      }
      const body = BodySchema.safeParse(json);
      const change = ChangeSchema.safeParse(json);
      if (!body.success || !change.success) throw new HandoffError(ErrorCodes.invalidInput, 'malformed change');
      const refused = h.channelRefusal(c, body.data.channel);
      if (refused) throw refused;
      const by = h.identity(c, body.data.author);
      const where = { surface: 'web' as const, channel: body.data.channel };
      const settings = h.gateway.channelSettings;
      const op = change.data;
      let message: string;
      switch (op.op) {
        case 'set_instructions':
          message = await settings.setInstructions(where, by, op.text);
          break;
        case 'clear_instructions':
          message = await settings.clearInstructions(where, by);
          break;
        case 'remember':
          message = (await settings.remember(where, by, op.text)).message;
          break;
        case 'forget':
          message = await settings.forget(where, by, op.factId);
          break;
        case 'accept':
        case 'dismiss':
          message = await settings.decideProposal({
            proposalId: op.proposalId,
            by,
            outcome: op.op,
            surface: 'web',
          });
          break;
      }
      return c.json({ ok: true, message });
    } catch (err) {
      return h.fail(c, asUnavailable(err));
    }
  });
}

const CardActionSchema = z.object({
  action: z.enum(['accept-memory', 'dismiss-memory']),
  /** The proposal id (the card's buttons carry it where other cards carry an approval id). */
  approvalId: z.string().min(1).max(40),
  author: z.string().optional(),
});

/** Accept or Dismiss on a result card's proposed fact (`POST /api/actions`). */
export async function memoryCardAction(
  gateway: HandoffInbound,
  json: unknown,
  identity: (typed: unknown) => Identity,
): Promise<{ ok: true; message: string }> {
  const parsed = CardActionSchema.safeParse(json);
  if (!parsed.success) throw new HandoffError(ErrorCodes.invalidInput, 'malformed action');
  const message = await gateway.channelSettings.decideProposal({
    proposalId: parsed.data.approvalId,
    by: identity(parsed.data.author),
    outcome: parsed.data.action === 'accept-memory' ? 'accept' : 'dismiss',
    surface: 'web',
  });
  return { ok: true, message };
}

function esc(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** The settings panel's body: instructions and memory, with buttons for approvers. */
export function channelSettingsHtml(view: ChannelSettingsView): string {
  const parts: string[] = [];
  if (view.policyInstructions)
    parts.push(
      `<section class="channel-instructions policy"><h3>From the policy file</h3><p class="pre">${esc(view.policyInstructions)}</p></section>`,
    );
  const instructions = view.instructions
    ? `<p class="pre">${esc(view.instructions.text)}</p><p class="muted">Set by ${esc(view.instructions.by)} · ${esc(view.instructions.at.slice(0, 16).replace('T', ' '))} UTC</p>`
    : '<p class="muted">No instructions set.</p>';
  const editor = view.canEdit
    ? `<form class="channel-instructions-form" data-op="set_instructions"><textarea name="text" maxlength="4000" rows="4" aria-label="Instructions">${esc(view.instructions?.text ?? '')}</textarea><button type="submit" class="secondary-button">Save instructions</button>${view.instructions ? ' <button type="button" class="link-button" data-op="clear_instructions">Clear</button>' : ''}</form>`
    : '';
  parts.push(`<section class="channel-instructions"><h3>Instructions</h3>${instructions}${editor}</section>`);
  const facts = view.memory.length
    ? `<ul class="channel-memory">${view.memory
        .map(
          (f) =>
            `<li><span class="fact">${esc(f.text)}</span> <span class="muted">— ${f.source === 'proposed' ? `proposed by ${esc(f.proposedBy ?? 'someone')}, accepted by ` : ''}${esc(f.by)}</span>${view.canEdit ? ` <button type="button" class="link-button" data-op="forget" data-fact-id="${esc(f.id)}">Forget</button>` : ''}</li>`,
        )
        .join('')}</ul>`
    : '<p class="muted">Nothing remembered yet. Say “@handoff remember that …”.</p>';
  parts.push(`<section class="channel-memory-section"><h3>Memory</h3>${facts}</section>`);
  if (view.proposals.length > 0)
    parts.push(
      `<section class="channel-proposals"><h3>Proposed</h3><ul>${view.proposals
        .map(
          (p) =>
            `<li><span class="fact">${esc(p.text)}</span> <span class="muted">— proposed by ${esc(p.proposedBy)}</span>${view.canEdit ? ` <button type="button" class="secondary-button" data-op="accept" data-proposal-id="${esc(p.id)}">Accept</button> <button type="button" class="link-button" data-op="dismiss" data-proposal-id="${esc(p.id)}">Dismiss</button>` : ''}</li>`,
        )
        .join('')}</ul></section>`,
    );
  if (!view.canEdit)
    parts.push('<p class="muted">Only this channel\'s approvers change its instructions and memory.</p>');
  return parts.join('');
}
