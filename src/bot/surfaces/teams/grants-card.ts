import type { Grant } from '../../../core/index.ts';
import {
  type AdaptiveCard,
  cardSchemaUrl,
  cardVerbs,
  escapeCardMarkdown,
  type JsonObject,
  truncate,
} from './adaptive-cards.ts';

const minute = (iso: string) => `${iso.replace('T', ' ').slice(0, 16)} UTC`;

const text = (t: string, extra: JsonObject = {}): JsonObject => ({ type: 'TextBlock', wrap: true, text: t, ...extra });

/** The `grants` answer: a channel's live standing grants, each with who granted it, its expiry and Revoke. */
export function grantsCard(grants: readonly Grant[]): AdaptiveCard {
  const head = text(
    grants.length === 0
      ? 'No standing grants in this channel: every watched call asks an approver.'
      : 'Standing grants in this channel: these calls run without asking.',
    { weight: 'Bolder' },
  );
  const items: JsonObject[] = grants.slice(0, 20).map((g) => ({
    type: 'Container',
    separator: true,
    items: [
      text(escapeCardMarkdown(truncate(`${g.pattern} — ${g.description}`, 400))),
      text(
        escapeCardMarkdown(
          `Granted by ${truncate(g.createdBy.name, 100)} on ${minute(g.createdAt)} · until ${minute(g.expiresAt)} · ${g.id}`,
        ),
        { isSubtle: true, size: 'Small', spacing: 'None' },
      ),
      {
        type: 'ActionSet',
        actions: [
          {
            type: 'Action.Execute',
            title: 'Revoke',
            verb: cardVerbs.grantRevoke,
            data: { grantId: g.id },
            style: 'destructive',
          },
        ],
      },
    ],
  }));
  return {
    type: 'AdaptiveCard',
    $schema: cardSchemaUrl,
    version: '1.5',
    msteams: { width: 'Full' },
    body: [head, ...items],
  };
}
