/**
 * Local fakes that speak Microsoft's wire formats, for testing a Teams bot without Microsoft:
 *
 * - `FakeEntra`: Bot Framework OpenID metadata + JWKS, channel tokens, Entra's v2 token endpoint;
 * - `FakeBotConnector`: the Bot Connector REST API v3 at the activity's serviceUrl;
 * - `FakeGraph`: Graph v1.0 shares (files in channels and group chats) and checkMemberGroups;
 * - `FakeTeamsFiles`: personal-chat file downloads and FileConsent upload sessions;
 * - `TeamsSender`: plays the Teams channel, POSTing signed activities to the bot.
 *
 * All listen on 127.0.0.1, on a free port; `close()` stops them and drops their connections.
 * `startTeamsFakes()` starts the four servers wired together.
 */
import { FAKE_TENANT_ID } from './teams-common.ts';
import { FakeBotConnector, type FakeBotConnectorOptions } from './teams-connector.ts';
import { FakeEntra } from './teams-entra.ts';
import { FakeTeamsFiles } from './teams-files.ts';
import { FakeGraph } from './teams-graph.ts';
import { TeamsSender, type TeamsSenderOptions } from './teams-sender.ts';

export {
  conversationBaseId,
  FAKE_TENANT_ID,
  type InjectedFailure,
  isChannelConversation,
  personalConversationId,
} from './teams-common.ts';
export {
  type ActivityJson,
  activityText,
  adaptiveCards,
  type CardExecute,
  type ConnectorCall,
  type ConnectorOperation,
  type CreatedConversation,
  cardExecutes,
  cardOf,
  FakeBotConnector,
  type FakeBotConnectorOptions,
  type TeamsMember,
  type TeamsMessage,
} from './teams-connector.ts';
export {
  BOT_FRAMEWORK_AUDIENCE,
  BOT_FRAMEWORK_SCOPE,
  BOT_FRAMEWORK_TENANT_ID,
  type ChannelTokenOptions,
  type EntraRequest,
  FakeEntra,
  type FakeEntraOptions,
  GRAPH_AUDIENCE,
  GRAPH_SCOPE,
  type TokenRequest,
} from './teams-entra.ts';
export {
  FakeTeamsFiles,
  type FakeTeamsFilesOptions,
  type FileDownloadInfoAttachment,
  type FilesCall,
  type FilesOperation,
  fileDownloadInfoAttachment,
  type UploadInfo,
  type UploadRecord,
} from './teams-files.ts';
export {
  FakeGraph,
  type FakeGraphOptions,
  fileTypeOf,
  type GraphCall,
  type GraphOperation,
  mimeTypeOf,
  type SharedFile,
  shareIdFor,
} from './teams-graph.ts';
export {
  type SendOptions,
  type SentActivity,
  type TeamsActivity,
  type TeamsChannel,
  type TeamsChannelData,
  type TeamsConversationAccount,
  type TeamsGroupChat,
  type TeamsPlace,
  TeamsSender,
  type TeamsSenderOptions,
  type TeamsTeam,
  type TeamsUser,
  teamsChannel,
  teamsGroupChat,
  teamsTeam,
  teamsUser,
} from './teams-sender.ts';

export interface TeamsFakes {
  entra: FakeEntra;
  connector: FakeBotConnector;
  graph: FakeGraph;
  files: FakeTeamsFiles;
  appId: string;
  appPassword: string;
  tenantId: string;
  /** The settings that point Handoff's Teams surface at these fakes (Graph off unless `graph`). */
  handoffEnv(options?: { graph?: boolean }): Record<string, string>;
  /** A sender for the bot at `botUrl`, wired to these fakes. */
  sender(botUrl: string, options?: Partial<Omit<TeamsSenderOptions, 'botUrl'>>): TeamsSender;
  /** Closes every fake, even if one fails to. Idempotent. */
  close(): Promise<void>;
}

/** Starts FakeEntra, FakeBotConnector, FakeGraph and FakeTeamsFiles for one bot app. */
export async function startTeamsFakes(
  options: {
    appId?: string;
    appPassword?: string;
    tenantId?: string;
    graphRoles?: string[];
    connector?: Omit<FakeBotConnectorOptions, 'entra'>;
    strictFragmentSize?: boolean;
  } = {},
): Promise<TeamsFakes> {
  const appId = options.appId ?? '0f5e6d7c-8b9a-4c1d-9e2f-3a4b5c6d7e8f';
  const appPassword = options.appPassword ?? 'fake-teams-app-password';
  const tenantId = options.tenantId ?? FAKE_TENANT_ID;
  const entra = new FakeEntra({
    appId,
    appPassword,
    tenantId,
    ...(options.graphRoles ? { graphRoles: options.graphRoles } : {}),
  });
  const connector = new FakeBotConnector({ entra, ...options.connector });
  const graph = new FakeGraph({ entra });
  const files = new FakeTeamsFiles(
    options.strictFragmentSize === undefined ? {} : { strictFragmentSize: options.strictFragmentSize },
  );
  const all = [entra, connector, graph, files];
  try {
    await Promise.all(all.map((s) => s.start()));
  } catch (err) {
    await Promise.allSettled(all.map((s) => s.close()));
    throw err;
  }
  return {
    entra,
    connector,
    graph,
    files,
    appId,
    appPassword,
    tenantId,
    handoffEnv: ({ graph: withGraph = false } = {}) => ({
      TEAMS_APP_ID: appId,
      TEAMS_APP_PASSWORD: appPassword,
      TEAMS_TENANT_ID: tenantId,
      TEAMS_OPENID_METADATA_URL: entra.openIdMetadataUrl,
      TEAMS_TOKEN_ENDPOINT: entra.tokenEndpoint(),
      TEAMS_SERVICE_URL_ALLOWLIST: new URL(connector.url).origin,
      TEAMS_FILE_HOSTS: [files.url, graph.url].map((u) => new URL(u).origin).join(','),
      ...(withGraph ? { TEAMS_GRAPH_ENABLED: 'true', TEAMS_GRAPH_URL: new URL(graph.url).origin } : {}),
    }),
    sender: (botUrl, senderOptions = {}) =>
      new TeamsSender({ botUrl, appId, entra, serviceUrl: connector.url, tenantId, ...senderOptions }),
    close: async () => {
      const results = await Promise.allSettled(all.map((s) => s.close()));
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    },
  };
}
