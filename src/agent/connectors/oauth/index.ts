export {
  type AbandonedConnection,
  type BeginResult,
  type CompletedConnection,
  ConnectionService,
  type ConnectionServiceOptions,
  type ConnectionSummary,
  type RevokeResult,
} from './connections.ts';
export {
  ConnectionErrorCodes,
  connectionRequired,
  connectionRequiredCode,
  isConnectionRequired,
} from './errors.ts';
export { MemoryConnectionRedis } from './memory-redis.ts';
export { sdkCompatibleFetch } from './sdk-fetch.ts';
export { parseConnectionsKey } from './sealed-box.ts';
export {
  type ConnectionContext,
  ConnectionContextSchema,
  type ConnectionRedis,
  recordUnreadableCode,
  type StoredConnectionSummary,
  type StoredTokens,
  TokenStore,
  type TokenStoreOptions,
} from './token-store.ts';
export {
  callbackPath,
  defaultFlowTtlMs,
  type OAuthConnectorSettings,
  oauthSettings,
  type ProviderMode,
  UserOAuthProvider,
  type UserOAuthProviderOptions,
} from './user-provider.ts';
