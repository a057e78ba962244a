export { type LoadOptions, loadConfig, settingsTable } from './load-config.ts';
export { type Config, type SettingDef, settingDefs } from './settings.ts';
