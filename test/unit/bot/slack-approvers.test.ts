import { describe, expect, it } from 'vitest';
import { mentionApprovers, slackApproversFor } from '../../../src/bot/surfaces/slack/index.ts';

describe('SLACK_APPROVERS entries', () => {
  const map = { C1: ['UBEN', 'SFIN'], '*': ['UOPS'] };

  it('splits users from user groups, falls back to *, and is undefined without an entry', () => {
    expect(slackApproversFor(map, 'C1')).toEqual({ users: ['UBEN'], groups: ['SFIN'] });
    expect(slackApproversFor(map, 'C2')).toEqual({ users: ['UOPS'], groups: [] });
    expect(slackApproversFor({ C1: ['UBEN'] }, 'C2')).toBeUndefined();
  });

  it('names approvers as Slack mentions, and other ids as written', () => {
    expect(mentionApprovers({ users: ['UBEN', 'web:bo'], groups: ['SFIN'] })).toBe('<@UBEN>, web:bo, <!subteam^SFIN>');
  });
});
