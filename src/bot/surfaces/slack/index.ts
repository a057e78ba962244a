export {
  type ApproverIds,
  mentionApprovers,
  type SlackApproverMap,
  SlackUserGroups,
  slackApproversFor,
} from './approvers.ts';
export {
  actionIds,
  blockKitLimits,
  callbackIds,
  decodeButtonValue,
  encodeButtonValue,
  escapeMrkdwn,
  homeView,
  markdownToMrkdwn,
  type PlanButtonValue,
  renderBlocks,
  type ScheduleItem,
  type SlackMessage,
  scheduleActionPattern,
} from './block-kit.ts';
export { defaultInputExtensions, downloadSlackFiles, type SlackFile } from './files-in.ts';
export { HonoReceiver, type HonoReceiverOptions } from './hono-receiver.ts';
export { EditLimiter } from './rate-limit.ts';
export { createSlack, parseCommand, type SlackIntegration, type SlackOptions } from './slack-app.ts';
export { channelRefusals, SlackSurface, type SlackSurfaceOptions, undeliverableErrors } from './slack-surface.ts';
