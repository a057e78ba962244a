export { type ConsoleOptions, consoleRoutes, statusFor } from './console-routes.ts';
export { type ConsoleMessage, ConsoleMessageSchema, ConsoleStore, consoleEventsChannel } from './console-store.ts';
export { escapeHtml, renderHtml } from './render-html.ts';
export { WebSurface } from './web-surface.ts';
