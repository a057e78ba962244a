export type { ArtifactStore, DownloadLink, PutResult } from './artifacts/artifact-store.ts';
export { formatBytes } from './artifacts/format-bytes.ts';
export {
  assertValidKey,
  LocalArtifactStore,
  type LocalArtifactStoreOptions,
  type SignedDownload,
} from './artifacts/local.ts';
export { artifactStoreFailed, S3ArtifactStore, type S3ArtifactStoreOptions } from './artifacts/s3.ts';
export { copyStoredFiles, inputFileKey } from './artifacts/stored-files.ts';
export { type AuditCliOutput, auditExport, auditPrune, auditVerify, parseSince } from './audit-cli.ts';
export { AuditLog, type AuditLogOptions, type AuditRecord, hashRecord } from './audit-log.ts';
export {
  type AuditAnchor,
  type AuditExportDigest,
  type AuditExportResult,
  type AuditExportTarget,
  type AuditProblem,
  type AuditProblemKind,
  type AuditVerifyResult,
  auditAnchorKey,
  auditExportedKey,
  exportAudit,
  type PruneResult,
  parseAuditEntries,
  pruneAudit,
  verifyAudit,
  verifyAuditInRedis,
} from './audit-verify.ts';
export { ChannelSettingsStore } from './channel-settings-store.ts';
export { dataDirLockedCode } from './data-dir-lock.ts';
export { grantsCli } from './grant-cli.ts';
export { GrantStore } from './grant-store.ts';
export {
  closeConnection,
  createQueueConnection,
  createRecordConnection,
  type RedisHealth,
  type RedisHealthProblem,
  redisHealth,
  redisHealthProblems,
  waitForReady,
  watchErrors,
} from './redis.ts';
export { type EmbeddedRedis, type StartRedisServerOptions, startRedisServer } from './redis-server.ts';
export { type PostClaim, ScheduleStore } from './schedule-store.ts';
export { cancelChannel, StateStore } from './state-store.ts';
export { type FanOutRef, WorkstreamStore } from './workstream-store.ts';
