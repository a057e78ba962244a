export { consoleCommand, consoleHelp } from './console-cli.ts';
export { OidcSignIn } from './console-oidc.ts';
export { type ConsoleAccess, type ConsoleOptions, consoleRoutes, statusFor } from './console-routes.ts';
export { ConsoleSessions } from './console-sessions.ts';
export { type ConsoleMessage, ConsoleMessageSchema, ConsoleStore, consoleEventsChannel } from './console-store.ts';
export { ConsoleUsers } from './console-users.ts';
export { escapeHtml, renderHtml } from './render-html.ts';
export { consoleChannelPattern, noticesChannelFor, WebSurface } from './web-surface.ts';
