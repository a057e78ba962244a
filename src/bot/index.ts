export type { ChatSurface, PersonInfo } from './chat-surface.ts';
export { type ConnectionRoutesOptions, connectionRoutes } from './connection-routes.ts';
export type { ReplyOutcome } from './follow-up.ts';
export {
  connectionUserOf,
  Gateway,
  type GatewayDeps,
  type GatewayLimits,
  type IncomingFile,
} from './gateway.ts';
export { createHttpApp, createMetricsApp, type HttpAppOptions, type MetricsAccess, type Probes } from './http-app.ts';
export type { ConnectAnswer, HandoffInbound, RequestInput, ScheduleInbound } from './inbound.ts';
export { startNotifyWorker } from './notify-worker.ts';
export { startScheduleWorker } from './schedule-worker.ts';
export {
  createSlack,
  mentionApprovers,
  type SlackIntegration,
  type SlackOptions,
  slackApproversFor,
} from './surfaces/slack/index.ts';
export {
  createTeams,
  type TeamsIntegration,
  type TeamsOptions,
  teamsChecks,
  teamsCommand,
} from './surfaces/teams/index.ts';
export {
  type ConsoleAccess,
  ConsoleSessions,
  ConsoleStore,
  ConsoleUsers,
  consoleCommand,
  consoleHelp,
  consoleRoutes,
  OidcSignIn,
  renderHtml,
  WebSurface,
} from './surfaces/web/index.ts';
export { asUnavailable } from './unavailable.ts';
export {
  type ConnectionsView,
  type ConnectView,
  type PlanReachView,
  type PlanView,
  planReachView,
  planView,
  type ResultView,
  reachLines,
  resultView,
  type View,
} from './views.ts';
