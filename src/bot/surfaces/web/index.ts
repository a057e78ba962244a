export { type ConsoleCliOutput, consoleCommand, consoleHelp } from './console-cli.ts';
export { OidcSignIn, type OidcSignInOptions } from './console-oidc.ts';
export {
  type ConsoleAccess,
  type ConsoleOptions,
  consoleActionMaxBytes,
  consoleRoutes,
  originProblem,
  statusFor,
} from './console-routes.ts';
export { type ConsoleSession, ConsoleSessions } from './console-sessions.ts';
export { type ConsoleMessage, ConsoleMessageSchema, ConsoleStore, consoleEventsChannel } from './console-store.ts';
export { maxUploadTotalBytes, type SpooledUpload, spoolUpload, type UploadLimits } from './console-upload.ts';
export { type ConsoleUser, ConsoleUsers, consoleUserIdFor } from './console-users.ts';
export { escapeHtml, renderHtml } from './render-html.ts';
export { WebSurface } from './web-surface.ts';
