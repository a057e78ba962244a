export type { ChatSurface } from './chat-surface.ts';
export { asUnavailable, Gateway, type GatewayDeps, type GatewayLimits, type IncomingFile } from './gateway.ts';
export { createHttpApp, type HttpAppOptions } from './http-app.ts';
export { startNotifyWorker } from './notify-worker.ts';
export {
  createSlack,
  mentionApprovers,
  type SlackIntegration,
  type SlackOptions,
  slackApproversFor,
} from './surfaces/slack/index.ts';
export { ConsoleStore, consoleRoutes, renderHtml, WebSurface } from './surfaces/web/index.ts';
export { type PlanView, planView, type ResultView, resultView, type View } from './views.ts';
