import { z } from 'zod';

/**
 * Every setting Handoff reads, in one table: its key in handoff.yaml, its environment
 * variable, its schema (with the default) and what it does. README's configuration
 * table is printed from this list by `handoff config`.
 */
export interface SettingDef {
  key: string;
  env: string;
  schema: z.ZodType;
  doc: string;
  /** Never printed (tokens, keys, secrets). */
  secret?: boolean;
}

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const bool = z.union([z.boolean(), z.enum(['1', '0', 'true', 'false', 'yes', 'no'])]).transform((v) => {
  if (typeof v === 'boolean') return v;
  return v === '1' || v === 'true' || v === 'yes';
});

export const settingDefs = [
  {
    key: 'port',
    env: 'HANDOFF_PORT',
    schema: int(0, 65535).default(3000),
    doc: 'HTTP port of the bot (console, downloads, health).',
  },
  {
    key: 'host',
    env: 'HANDOFF_HOST',
    schema: z.string().min(1).default('127.0.0.1'),
    doc: 'Address the HTTP server listens on.',
  },
  {
    key: 'publicUrl',
    env: 'HANDOFF_PUBLIC_URL',
    schema: z.url().optional(),
    doc: 'Base URL people reach the bot at (download links; the return address of per-user connections, <url>/connectors/oauth/callback). Default http://<host>:<port>.',
  },
  {
    key: 'redisUrl',
    env: 'REDIS_URL',
    schema: z.string().optional(),
    doc: 'Redis to use. `handoff dev` starts its own redis-server when unset; bot and runner require it.',
  },
  {
    key: 'dataDir',
    env: 'HANDOFF_DATA_DIR',
    schema: z.string().min(1).default('.handoff'),
    doc: 'Local state: artifacts, workspaces, the dev Redis files.',
  },
  {
    key: 'signingSecret',
    env: 'HANDOFF_SIGNING_SECRET',
    schema: z.string().min(32).optional(),
    doc: 'HMAC key for download links (≥ 32 chars). `handoff dev` generates and keeps one in the data dir.',
    secret: true,
  },
  {
    key: 'connectionsKey',
    env: 'HANDOFF_CONNECTIONS_KEY',
    schema: z.string().min(1).optional(),
    doc: 'Key that encrypts the tokens of per-user connectors (`auth:` in handoff.yaml) at rest: 32 random bytes as 64 hex characters or base64 (`openssl rand -base64 32`). Without it those connectors are unavailable. `handoff dev` generates and keeps one in the data dir. Changing it disconnects everyone.',
    secret: true,
  },
  {
    key: 'consoleToken',
    env: 'HANDOFF_CONSOLE_TOKEN',
    schema: z.string().min(16).optional(),
    doc: 'One shared access token for the web console under `handoff dev`: every console request must carry it (required when HANDOFF_HOST is not a loopback address). It gives nobody an identity, so `handoff bot` refuses it without HANDOFF_CONSOLE_SIGNIN.',
    secret: true,
  },
  {
    key: 'anthropicApiKey',
    env: 'ANTHROPIC_API_KEY',
    schema: z.string().min(1).optional(),
    doc: 'Anthropic API key. Without it the demo model runs.',
    secret: true,
  },
  {
    key: 'anthropicBaseUrl',
    env: 'ANTHROPIC_BASE_URL',
    schema: z.url().optional(),
    doc: 'Messages API base URL (a gateway or proxy).',
  },
  {
    key: 'model',
    env: 'HANDOFF_MODEL',
    schema: z.string().min(1).default('claude-sonnet-5-5'),
    doc: 'Model id for planning and runs, as the provider names it: `claude-sonnet-5-5` (Anthropic API), `global.anthropic.claude-sonnet-5-5` or `anthropic.claude-…-v1:0` (Bedrock; required there), `claude-sonnet-4-5@20250929` (Vertex AI).',
  },
  {
    key: 'modelProvider',
    env: 'HANDOFF_MODEL_PROVIDER',
    schema: z.enum(['anthropic', 'bedrock', 'vertex']).optional(),
    doc: 'Where Claude is called: `anthropic` (the Anthropic API, ANTHROPIC_API_KEY), `bedrock` (Amazon Bedrock: AWS_REGION or HANDOFF_BEDROCK_REGION, and the standard AWS credential chain) or `vertex` (Google Vertex AI: ANTHROPIC_VERTEX_PROJECT_ID, CLOUD_ML_REGION and Application Default Credentials). Default: `anthropic` when ANTHROPIC_API_KEY is set, else the demo model. See docs/models.md.',
  },
  {
    key: 'bedrockRegion',
    env: 'HANDOFF_BEDROCK_REGION',
    schema: z
      .string()
      .regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'an AWS region such as eu-central-1')
      .optional(),
    doc: 'AWS region Amazon Bedrock is called in (HANDOFF_MODEL_PROVIDER=bedrock). Default: AWS_REGION; one of them is required there. Prompts and outputs are processed in that region, or in the geography of an inference profile (`eu.`, `us.`; `global.` may route anywhere).',
  },
  {
    key: 'bedrockBaseUrl',
    env: 'ANTHROPIC_BEDROCK_BASE_URL',
    schema: z.url().optional(),
    doc: 'Bedrock Runtime endpoint (a VPC interface endpoint or gateway). Default https://bedrock-runtime.<region>.amazonaws.com. Requests are still signed for the Bedrock region.',
  },
  {
    key: 'vertexProjectId',
    env: 'ANTHROPIC_VERTEX_PROJECT_ID',
    schema: z.string().min(1).optional(),
    doc: 'Google Cloud project whose Vertex AI serves Claude (HANDOFF_MODEL_PROVIDER=vertex; required there).',
  },
  {
    key: 'vertexRegion',
    env: 'CLOUD_ML_REGION',
    schema: z.string().min(1).optional(),
    doc: 'Vertex AI location Claude is called in, e.g. `europe-west1`, `us-east5`, or `global` (Google picks the region; no data residency). Required with HANDOFF_MODEL_PROVIDER=vertex.',
  },
  {
    key: 'vertexBaseUrl',
    env: 'ANTHROPIC_VERTEX_BASE_URL',
    schema: z.url().optional(),
    doc: 'Vertex AI endpoint including `/v1` (Private Service Connect). Default https://<CLOUD_ML_REGION>-aiplatform.googleapis.com/v1.',
  },
  {
    key: 'sandboxImage',
    env: 'HANDOFF_SANDBOX_IMAGE',
    schema: z.string().min(1).default('handoff-sandbox:latest'),
    doc: 'Docker image that runs untrusted work.',
  },
  {
    key: 'sandboxMemoryMb',
    env: 'HANDOFF_SANDBOX_MEMORY_MB',
    schema: int(64, 65536).default(1024),
    doc: 'Memory limit of a sandbox (no swap).',
  },
  {
    key: 'sandboxCpus',
    env: 'HANDOFF_SANDBOX_CPUS',
    schema: z.coerce.number().min(0.1).max(64).default(1),
    doc: 'CPU limit of a sandbox, in cores.',
  },
  {
    key: 'sandboxPids',
    env: 'HANDOFF_SANDBOX_PIDS',
    schema: int(16, 32768).default(256),
    doc: 'Process limit of a sandbox.',
  },
  {
    key: 'sandboxTmpfsMb',
    env: 'HANDOFF_SANDBOX_TMPFS_MB',
    schema: int(16, 8192).default(256),
    doc: 'Size of the sandbox /tmp.',
  },
  {
    key: 'commandTimeoutMs',
    env: 'HANDOFF_COMMAND_TIMEOUT_MS',
    schema: int(1000, 3_600_000).default(120_000),
    doc: 'Wall-time limit of one command in the sandbox.',
  },
  {
    key: 'runTimeoutMs',
    env: 'HANDOFF_RUN_TIMEOUT_MS',
    schema: int(10_000, 86_400_000).default(900_000),
    doc: 'Wall-time limit of a whole run (plan budget default).',
  },
  {
    key: 'questionTimeoutMs',
    env: 'HANDOFF_QUESTION_TIMEOUT_MS',
    schema: int(10_000, 604_800_000).default(1_800_000),
    doc: 'How long a run waits for an answer to the agent’s question.',
  },
  {
    key: 'maxTokensPerCall',
    env: 'HANDOFF_MAX_TOKENS_PER_CALL',
    schema: int(256, 128_000).default(8192),
    doc: 'max_tokens of each model call. A reply cut off at it is continued (up to 3 times in a row), then the run fails saying so.',
  },
  {
    key: 'pausedSandboxTtlMs',
    env: 'HANDOFF_PAUSED_SANDBOX_TTL_MS',
    schema: int(60_000, 604_800_000).default(3_600_000),
    doc: 'How long a run waiting for an approval or an answer keeps its frozen sandbox (/tmp and all). After that it is removed and the run resumes in a rebuilt one.',
  },
  {
    key: 'sandboxOutputMb',
    env: 'HANDOFF_SANDBOX_OUTPUT_MB',
    schema: int(1, 65536).default(256),
    doc: 'Size of /workspace/out: the most a run can write there (memory-backed, counts toward the sandbox memory).',
  },
  {
    key: 'sandboxWarmPool',
    env: 'HANDOFF_SANDBOX_WARM_POOL',
    schema: int(0, 64).default(0),
    doc: 'Idle, started, hardened sandbox containers each runner keeps ready, so a run starts without waiting for one (docs/operations.md, "Warm pool"). 0 (the default) keeps none. Each is used by one run only, then removed.',
  },
  {
    key: 'maxArtifactBytesPerRun',
    env: 'HANDOFF_MAX_ARTIFACT_BYTES_PER_RUN',
    schema: int(1, 2 ** 40).default(512 * 1024 * 1024),
    doc: 'Most bytes of deliverables one run may deliver.',
  },
  {
    key: 'retentionDays',
    env: 'HANDOFF_RETENTION_DAYS',
    schema: int(1, 36_500).default(30),
    doc: 'Days a task’s records (task, plans, checkpoints, answers, thread links, console messages, finished jobs) and its stored files are kept after it ends. The audit log has its own retention.',
  },
  {
    key: 'lockDurationMs',
    env: 'HANDOFF_LOCK_DURATION_MS',
    schema: int(2_000, 300_000).default(8_000),
    doc: 'How long a runner’s hold on a job lasts without renewal (renewed at half of it). With the stalled interval, how soon a dead runner’s run resumes elsewhere.',
  },
  {
    key: 'stalledIntervalMs',
    env: 'HANDOFF_STALLED_INTERVAL_MS',
    schema: int(1_000, 300_000).default(4_000),
    doc: 'How often runners look for jobs whose runner stopped renewing its hold.',
  },
  {
    key: 'maxStalledCount',
    env: 'HANDOFF_MAX_STALLED_COUNT',
    schema: int(1, 100).default(5),
    doc: 'How many times a job is resumed after its runner died before the task fails.',
  },
  {
    key: 'builtInSkillsDir',
    env: 'HANDOFF_BUILTIN_SKILLS_DIR',
    schema: z.string().min(1).optional(),
    doc: 'Folder of the built-in skills (default: skills/ beside the code). A runner in a container whose sandboxes are made by the host’s Docker engine needs them at a path that is the same on the host: the app image copies them there at start (docs/deploy-compose.md).',
  },
  {
    key: 'runnerId',
    env: 'HANDOFF_RUNNER_ID',
    schema: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,100}$/, 'letters, digits, _ . - (at most 100)')
      .optional(),
    doc: 'Name of this runner in the audit trail and on its sandboxes (a pod name, say). Default: host name, process id and a random suffix. MUST differ between running runners.',
  },
  {
    key: 'shutdownTimeoutMs',
    env: 'HANDOFF_SHUTDOWN_TIMEOUT_MS',
    schema: int(1_000, 600_000).default(10_000),
    doc: 'How long a process may take to stop on SIGTERM or Ctrl-C (hand back running work, close workers, stop the dev Redis last) before it exits anyway.',
  },
  {
    key: 's3Bucket',
    env: 'HANDOFF_S3_BUCKET',
    schema: z.string().min(3).max(63).optional(),
    doc: 'Keep inputs and deliverables in this S3 bucket (links are presigned) instead of the data dir.',
  },
  {
    key: 's3Prefix',
    env: 'HANDOFF_S3_PREFIX',
    schema: z.string().max(200).optional(),
    doc: 'Key prefix inside the bucket.',
  },
  {
    key: 's3Endpoint',
    env: 'AWS_ENDPOINT_URL_S3',
    schema: z.url().optional(),
    doc: 'S3-compatible endpoint (MinIO, Ceph, R2…); path-style addressing is used with it. Credentials: the standard AWS variables.',
  },
  {
    key: 's3Region',
    env: 'AWS_REGION',
    schema: z.string().min(1).optional(),
    doc: 'Region of the bucket; also where Amazon Bedrock is called unless HANDOFF_BEDROCK_REGION is set.',
  },
  {
    key: 'logRedaction',
    env: 'HANDOFF_LOG_REDACTION',
    schema: bool.default(true),
    doc: 'Remove e-mails, phone numbers, card numbers, IBANs and secrets from every log line.',
  },
  {
    key: 'auditRetentionDays',
    env: 'HANDOFF_AUDIT_RETENTION_DAYS',
    schema: int(1, 36_500).default(180),
    doc: 'Audit records older than this (and already exported) are removed by `handoff audit prune`.',
  },
  {
    key: 'policyFile',
    env: 'HANDOFF_POLICY',
    schema: z.string().min(1).optional(),
    doc: 'Policy file (YAML, see docs/policy.md); validated at start. Default: the built-in policy.',
  },
  {
    key: 'approvalExpiryMs',
    env: 'HANDOFF_APPROVAL_EXPIRY_MS',
    schema: int(10_000, 2_592_000_000).default(86_400_000),
    doc: 'How long a paused call waits for a person before the run stops.',
  },
  {
    key: 'maxUploadBytes',
    env: 'HANDOFF_MAX_UPLOAD_BYTES',
    schema: int(1, 2 ** 40).default(25 * 1024 * 1024),
    doc: 'Largest input file accepted.',
  },
  {
    key: 'maxFilesPerRequest',
    env: 'HANDOFF_MAX_FILES',
    schema: int(0, 100).default(10),
    doc: 'Most input files per request.',
  },
  {
    key: 'maxRequestChars',
    env: 'HANDOFF_MAX_REQUEST_CHARS',
    schema: int(1, 100_000).default(8000),
    doc: 'Longest request text accepted.',
  },
  {
    key: 'threadContextMessages',
    env: 'HANDOFF_THREAD_CONTEXT_MESSAGES',
    schema: int(0, 200).default(30),
    doc: 'Most earlier messages of the thread (or, for a top-level "this"/"that"/"above", the channel) a request takes along, newest kept; 0 turns thread context off.',
  },
  {
    key: 'threadContextChars',
    env: 'HANDOFF_THREAD_CONTEXT_CHARS',
    schema: int(500, 200_000).default(20_000),
    doc: 'Most characters of earlier messages a request takes along, newest kept.',
  },
  {
    key: 'downloadTtlMs',
    env: 'HANDOFF_DOWNLOAD_TTL_MS',
    schema: int(60_000, 604_800_000).default(86_400_000),
    doc: 'How long a download link stays valid.',
  },
  {
    key: 'runnerConcurrency',
    env: 'HANDOFF_RUNNER_CONCURRENCY',
    schema: int(1, 64).default(2),
    doc: 'Runs (and plans) one runner works on at once.',
  },
  {
    key: 'workstreamConcurrency',
    env: 'HANDOFF_WORKSTREAM_CONCURRENCY',
    schema: int(1, 64).default(4),
    doc: 'Workstreams (child runs of a plan that fans out, each in its own sandbox) one runner works on at once, all tasks together.',
  },
  {
    key: 'maxParallelWorkstreams',
    env: 'HANDOFF_MAX_PARALLEL_WORKSTREAMS',
    schema: int(1, 8).default(4),
    doc: "Workstreams of one task that run at once, across runners; the others wait for a slot. Also sets each workstream's share of the plan's wall time.",
  },
  {
    key: 'maxTokensPerRun',
    env: 'HANDOFF_MAX_TOKENS_PER_RUN',
    schema: int(1000, 100_000_000).default(400_000),
    doc: 'Token budget of a run.',
  },
  {
    key: 'maxCostUsdPerRun',
    env: 'HANDOFF_MAX_COST_USD_PER_RUN',
    schema: z.coerce.number().positive().default(5),
    doc: 'Estimated-cost budget of a run, in USD.',
  },
  {
    key: 'priceInputPerMTok',
    env: 'HANDOFF_PRICE_INPUT_PER_MTOK',
    schema: z.coerce.number().nonnegative().default(3),
    doc: 'USD per million input tokens (cost estimates).',
  },
  {
    key: 'priceOutputPerMTok',
    env: 'HANDOFF_PRICE_OUTPUT_PER_MTOK',
    schema: z.coerce.number().nonnegative().default(15),
    doc: 'USD per million output tokens.',
  },
  {
    key: 'priceCacheReadPerMTok',
    env: 'HANDOFF_PRICE_CACHE_READ_PER_MTOK',
    schema: z.coerce.number().nonnegative().optional(),
    doc: 'USD per million cache-read tokens. Default: a tenth of the input price. Cache reads weigh against the token budget by this price relative to input.',
  },
  {
    key: 'priceCacheWritePerMTok',
    env: 'HANDOFF_PRICE_CACHE_WRITE_PER_MTOK',
    schema: z.coerce.number().nonnegative().optional(),
    doc: 'USD per million cache-write tokens. Default: 1.25 times the input price.',
  },
  {
    key: 'allowSelfApproval',
    env: 'HANDOFF_ALLOW_SELF_APPROVAL',
    schema: bool.optional(),
    doc: 'Let a requester approve their own plan. Default: yes on the console under `handoff dev`, no otherwise (and on Slack).',
  },
  {
    key: 'logLevel',
    env: 'LOG_LEVEL',
    schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    doc: 'Log level.',
  },
  {
    key: 'slackBotToken',
    env: 'SLACK_BOT_TOKEN',
    schema: z
      .string()
      .regex(/^xoxb-/, 'a bot token starts with xoxb-')
      .optional(),
    doc: 'Slack bot token (xoxb-…). When set, the bot serves Slack: at /slack/events, or over Socket Mode with SLACK_APP_TOKEN.',
    secret: true,
  },
  {
    key: 'slackSigningSecret',
    env: 'SLACK_SIGNING_SECRET',
    schema: z.string().min(16).optional(),
    doc: 'Slack signing secret: verifies every request to /slack/events (HTTP mode).',
    secret: true,
  },
  {
    key: 'slackAppToken',
    env: 'SLACK_APP_TOKEN',
    schema: z
      .string()
      .regex(/^xapp-/, 'an app-level token starts with xapp-')
      .optional(),
    doc: 'Slack app-level token (xapp-…, connections:write): Socket Mode, no public URL needed.',
    secret: true,
  },
  {
    key: 'slackApiUrl',
    env: 'SLACK_API_URL',
    schema: z.url().optional(),
    doc: 'Slack Web API base URL (default https://slack.com/api/); tests point it at a local fake.',
  },
  {
    key: 'slackApprovers',
    env: 'SLACK_APPROVERS',
    schema: z
      .preprocess(
        (v) => {
          if (typeof v !== 'string') return v;
          try {
            return JSON.parse(v);
          } catch {
            return v;
          }
        },
        z.record(
          z.string().min(1),
          z.array(z.string().regex(/^[USW][A-Z0-9]{1,30}$/, 'a Slack user (U…/W…) or user group (S…) id')),
        ),
      )
      .optional(),
    doc: 'Who may approve plans in Slack, per channel id, as JSON: {"C123":["U1","S_GROUP"],"*":["U2"]}. User groups (S…) are resolved by Slack. Used only where the policy file names no approvers for the channel. Unlisted channels: anyone but the requester.',
  },
  {
    key: 'slackMaxUploadBytes',
    env: 'HANDOFF_SLACK_MAX_UPLOAD_BYTES',
    schema: int(1, 1024 * 1024 * 1024).default(50 * 1024 * 1024),
    doc: 'Deliverables up to this size are uploaded into the Slack thread; larger ones are posted as download links.',
  },
  {
    key: 'slackNativeProgress',
    env: 'HANDOFF_SLACK_NATIVE_PROGRESS',
    schema: bool.default(true),
    doc: "Show run progress with Slack's native plan display (chat streaming), falling back to an edited message where Slack refuses it. Off: always the edited message.",
  },
  {
    key: 'teamsAppId',
    env: 'TEAMS_APP_ID',
    schema: z
      .string()
      .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'the bot’s Microsoft App ID is a GUID')
      .optional(),
    doc: 'Microsoft App ID of the Azure Bot (Entra app registration). When set, the bot serves Microsoft Teams at /api/messages.',
  },
  {
    key: 'teamsAppPassword',
    env: 'TEAMS_APP_PASSWORD',
    schema: z.string().min(1).optional(),
    doc: 'Client secret of that app registration: the bot gets its outgoing tokens with it.',
    secret: true,
  },
  {
    key: 'teamsTenantId',
    env: 'TEAMS_TENANT_ID',
    schema: z
      .string()
      .regex(
        /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[a-z0-9.-]+)$/i,
        'a tenant id (GUID) or domain',
      )
      .optional(),
    doc: 'Entra tenant of a single-tenant bot, and the tenant Microsoft Graph is asked in. Unset: a multi-tenant bot (tokens from botframework.com).',
  },
  {
    key: 'teamsOpenidMetadataUrl',
    env: 'TEAMS_OPENID_METADATA_URL',
    schema: z.url().default('https://login.botframework.com/v1/.well-known/openidconfiguration'),
    doc: 'Where the signing keys and issuer of incoming Teams requests are found (OpenID metadata). Change it for sovereign clouds.',
  },
  {
    key: 'teamsTokenEndpoint',
    env: 'TEAMS_TOKEN_ENDPOINT',
    schema: z.url().optional(),
    doc: 'OAuth token endpoint the bot gets its outgoing tokens from (client credentials). Default: https://login.microsoftonline.com/<TEAMS_TENANT_ID or botframework.com>/oauth2/v2.0/token.',
  },
  {
    key: 'teamsServiceUrlAllowlist',
    env: 'TEAMS_SERVICE_URL_ALLOWLIST',
    schema: z
      .string()
      .default('smba.trafficmanager.net,*.botframework.com')
      .transform((v) =>
        v
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean),
      ),
    doc: 'The only Bot Connector hosts the bot calls (comma-separated): `host`, `*.domain` (both HTTPS only) or an exact origin `scheme://host:port`. An activity naming any other serviceUrl is refused.',
  },
  {
    key: 'teamsGraphEnabled',
    env: 'TEAMS_GRAPH_ENABLED',
    schema: bool.default(false),
    doc: 'Use Microsoft Graph with the app’s own token (needs TEAMS_TENANT_ID): fetch files shared in channels and group chats (Files.Read.All), resolve approver groups (GroupMember.Read.All) and read a channel mention’s thread (ChannelMessage.Read.Group, consented per team).',
  },
  {
    key: 'teamsGraphUrl',
    env: 'TEAMS_GRAPH_URL',
    schema: z.url().default('https://graph.microsoft.com'),
    doc: 'Microsoft Graph base URL (sovereign clouds, tests).',
  },
  {
    key: 'teamsFileHosts',
    env: 'TEAMS_FILE_HOSTS',
    schema: z
      .string()
      .default('*.sharepoint.com,*.sharepoint.us,*.sharepoint-df.com')
      .transform((v) =>
        v
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean),
      ),
    doc: 'Hosts the bot downloads attached files from and uploads accepted deliverables to (same syntax as TEAMS_SERVICE_URL_ALLOWLIST). Any other download or upload URL in an activity is refused.',
  },
  {
    key: 'teamsMaxUploadBytes',
    env: 'HANDOFF_TEAMS_MAX_UPLOAD_BYTES',
    schema: int(1, 1024 * 1024 * 1024).default(50 * 1024 * 1024),
    doc: 'In a personal chat, deliverables up to this size are offered for upload to the person’s OneDrive (FileConsent); larger ones stay download links.',
  },
  {
    key: 'notifyConcurrency',
    env: 'HANDOFF_NOTIFY_CONCURRENCY',
    schema: int(1, 256).default(16),
    doc: "Runner events each bot renders to chat at once. A task's own events are always rendered in order; this lets other threads go on while one waits (a large upload).",
  },
  {
    key: 'inboundConcurrency',
    env: 'HANDOFF_INBOUND_CONCURRENCY',
    schema: int(0, 256).default(8),
    doc: 'Chat deliveries (Slack events, Teams messages) each bot works on at once after acknowledging them. The acknowledgement itself only verifies, de-duplicates and queues; a burst waits in Redis instead of slowing the acknowledgements down. 0: this bot only acknowledges and queues, and other bots (with more than 0) do the work.',
  },
  {
    key: 'inboundBatchMs',
    env: 'HANDOFF_INBOUND_BATCH_MS',
    schema: int(0, 1000).default(0),
    doc: 'After a bot takes a chat delivery to work on, how long it waits for more to take with it (up to HANDOFF_INBOUND_CONCURRENCY), so that deliveries started together can share writes of their Redis commands: less CPU per mention and more taken under load, but a longer tail of acknowledgements on a bot that also takes the traffic (docs/operations.md, Sizing). Suits bots that only work (the traffic goes to bots with HANDOFF_INBOUND_CONCURRENCY=0). Each delivery starts at most this much later. 0: each as it comes.',
  },
  {
    key: 'consoleSignin',
    env: 'HANDOFF_CONSOLE_SIGNIN',
    schema: z.enum(['off', 'tokens', 'oidc']).optional(),
    doc: 'How people sign in to the web console: `tokens` (per-person links from `handoff console add-user`), `oidc` (HANDOFF_OIDC_ISSUER) or `off`. Default: `oidc` when an issuer is set, else `off` (under `handoff bot` the console is then off; `handoff dev` asks for a display name).',
  },
  {
    key: 'oidcIssuer',
    env: 'HANDOFF_OIDC_ISSUER',
    schema: z.url().optional(),
    doc: 'OpenID Connect issuer URL for console sign-in (https; http only on a loopback address). Register the redirect URI <HANDOFF_PUBLIC_URL>/auth/callback with the provider.',
  },
  {
    key: 'oidcClientId',
    env: 'HANDOFF_OIDC_CLIENT_ID',
    schema: z.string().min(1).optional(),
    doc: 'Client id registered with the OpenID provider.',
  },
  {
    key: 'oidcClientSecret',
    env: 'HANDOFF_OIDC_CLIENT_SECRET',
    schema: z.string().min(1).optional(),
    doc: 'Client secret registered with the OpenID provider (sent with HTTP Basic authentication).',
    secret: true,
  },
  {
    key: 'oidcScopes',
    env: 'HANDOFF_OIDC_SCOPES',
    schema: z.string().min(1).default('openid profile email'),
    doc: 'Scopes asked for at sign-in; must include `openid`. The display name comes from the name, preferred_username or email claim.',
  },
  {
    key: 'consoleSessionTtlMs',
    env: 'HANDOFF_CONSOLE_SESSION_TTL_MS',
    schema: int(60_000, 2_592_000_000).default(43_200_000),
    doc: 'How long a console sign-in lasts (the session is kept in Redis); then the person signs in again.',
  },
  {
    key: 'metricsPort',
    env: 'HANDOFF_METRICS_PORT',
    schema: int(0, 65535).optional(),
    doc: 'Serve /metrics on this port of HANDOFF_HOST. Under `handoff bot` the main port answers /metrics only with HANDOFF_METRICS_TOKEN; `handoff dev` on a loopback address serves it there too. `handoff runner` serves /metrics, /healthz and /readyz here and no HTTP at all without it.',
  },
  {
    key: 'metricsToken',
    env: 'HANDOFF_METRICS_TOKEN',
    schema: z.string().min(16).optional(),
    doc: 'When set, /metrics answers only requests with `Authorization: Bearer <token>` (on the main port and on HANDOFF_METRICS_PORT).',
    secret: true,
  },
  {
    key: 'otlpEndpoint',
    env: 'OTEL_EXPORTER_OTLP_ENDPOINT',
    schema: z.url().optional(),
    doc: 'OpenTelemetry collector (OTLP/HTTP, JSON) to send traces to: spans go to <url>/v1/traces. Unset (and no OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): tracing is off and costs nothing. See docs/operations.md (Tracing).',
  },
  {
    key: 'otlpTracesEndpoint',
    env: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
    schema: z.url().optional(),
    doc: 'Full URL spans are sent to (OTLP/HTTP, JSON), used as given; wins over OTEL_EXPORTER_OTLP_ENDPOINT.',
  },
  {
    key: 'otelServiceName',
    env: 'OTEL_SERVICE_NAME',
    schema: z.string().min(1).max(200).optional(),
    doc: 'service.name of this process in traces. Default `handoff-bot`, `handoff-runner` or `handoff-dev` by command.',
  },
] as const satisfies readonly SettingDef[];

type Defs = typeof settingDefs;
export type Config = { [D in Defs[number] as D['key']]: z.output<D['schema']> };
