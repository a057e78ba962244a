export {
  type AdaptiveCard,
  cardAttachment,
  messageText,
  parseAction,
  renderCard,
  type TeamsAction,
} from './adaptive-cards.ts';
export { teamsAppPackage, teamsManifest } from './app-package.ts';
export { teamsCommand, teamsHelp } from './package-cli.ts';
export { cleanText, createTeams, type TeamsIntegration, type TeamsOptions } from './teams-app.ts';
export { ClientCredentials, HostAllowlist, TeamsAuthError, TeamsTokenValidator } from './teams-auth.ts';
export { TeamsConnector } from './teams-connector.ts';
export { type TeamsCheck, teamsChecks } from './teams-doctor.ts';
export { downloadTeamsFiles, shareId } from './teams-files.ts';
export { TeamsSurface } from './teams-surface.ts';
