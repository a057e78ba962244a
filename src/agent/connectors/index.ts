export { type ConnectorCallResult, ConnectorHub, type HubOptions, type OfferedTool } from './connector-hub.ts';
export {
  actionOf,
  type ConnectorAction,
  type ConnectorTool,
  type ConnectorTrustPolicy,
  connectorTools,
  maxConnectorResultChars,
  modelToolName,
  type ServerTool,
  stricter,
  type ToolAnnotations,
  type ToolTrustExplained,
  toolNameSeparator,
  toolTrust,
  wrapUntrusted,
} from './connector-tools.ts';
export { type AuthProvider, type ConnectorSession, openSession, resultText, scrubSecrets } from './mcp-session.ts';
export * from './oauth/index.ts';
