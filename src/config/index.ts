export {
  type ConnectorConfig,
  type ConnectorSpec,
  connectorNamePattern,
  defaultConnectorTimeoutMs,
  type HttpConnectorSpec,
  isReference,
  parseConnectors,
  resolveRecord,
  resolveValue,
  type StdioConnectorSpec,
  type ToolTrust,
} from './connectors.ts';
export { type LoadOptions, loadConfig, loadConnectors, loadSkillsConfig, settingsTable } from './load-config.ts';
export { type Config, type SettingDef, settingDefs } from './settings.ts';
export { parseSkillsConfig, type SkillsConfig } from './skills.ts';
