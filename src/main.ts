import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { type ServerType, serve } from '@hono/node-server';
import type { Worker } from 'bullmq';
import Dockerode from 'dockerode';
import type { Redis } from 'ioredis';
import { AnthropicProvider, DemoProvider, type ModelProvider } from './agent/index.ts';
import {
  type EffectiveChannelPolicy,
  loadPolicy,
  type PlanPolicy,
  policyCheck,
  policyExplain,
  policyForChannel,
  toPlanPolicy,
} from './approvals/index.ts';
import {
  ConsoleStore,
  consoleRoutes,
  createHttpApp,
  createSlack,
  Gateway,
  mentionApprovers,
  type SlackIntegration,
  type SlackOptions,
  slackApproversFor,
  startNotifyWorker,
  WebSurface,
} from './bot/index.ts';
import { type Config, loadConfig, settingsTable } from './config/index.ts';
import { asHandoffError, type ConversationRef, ErrorCodes, HandoffError } from './core/index.ts';
import { createLogger, type Logger, Metrics } from './observability/index.ts';
import { Queues } from './queue/index.ts';
import { DockerSandboxDriver, Runner, type SandboxDriver, sandboxUser } from './runner/index.ts';
import {
  type ArtifactStore,
  AuditLog,
  auditExport,
  auditPrune,
  auditVerify,
  closeConnection,
  createQueueConnection,
  createRecordConnection,
  type EmbeddedRedis,
  LocalArtifactStore,
  redisHealth,
  S3ArtifactStore,
  StateStore,
  startRedisServer,
  waitForReady,
  watchErrors,
} from './storage/index.ts';

export type Mode = 'dev' | 'bot' | 'runner';

export interface StartOptions {
  config: Config;
  mode: Mode;
  logger?: Logger;
  /** Queue key prefix (tests use their own). */
  queuePrefix?: string;
  /** Replaces the Docker driver (in-memory tests of the code above it). */
  driver?: SandboxDriver;
  /** Replaces the configured model provider. */
  provider?: ModelProvider;
  /** Lock duration of runner jobs; shorter in tests of runner crashes. */
  lockDurationMs?: number;
}

export interface RunningHandoff {
  /** Base URL of the bot's HTTP server (bot and dev). */
  url?: string;
  redisUrl: string;
  close(): Promise<void>;
}

/** Wires the concrete classes for one role. The only place that picks implementations. */
export async function startHandoff(options: StartOptions): Promise<RunningHandoff> {
  const { config, mode } = options;
  const logger = options.logger ?? createLogger(config.logLevel, 'handoff', { scrubText: config.logRedaction });
  const dataDir = resolve(config.dataDir);
  const cleanups: Array<() => Promise<unknown>> = [];
  const close = async () => {
    // Every cleanup runs even if one fails, newest first.
    for (const step of cleanups.reverse()) await step().catch((err) => logger.warn({ err }, 'cleanup step failed'));
    cleanups.length = 0;
  };

  try {
    let redisUrl = config.redisUrl;
    if (!redisUrl) {
      if (mode !== 'dev')
        throw new HandoffError(ErrorCodes.config, 'REDIS_URL is required for `handoff bot` and `handoff runner`');
      const embedded: EmbeddedRedis = await startRedisServer({ dir: join(dataDir, 'redis') });
      cleanups.push(() => embedded.stop());
      redisUrl = embedded.url;
      logger.info({ redisUrl }, 'started redis-server');
    }
    const onRedisError = (err: Error) => logger.warn({ err: err.message }, 'Redis connection problem; retrying');
    const records = createRecordConnection(redisUrl, {}, onRedisError);
    cleanups.push(() => closeConnection(records));
    const queueConnection: Redis = createQueueConnection(redisUrl, {}, onRedisError);
    cleanups.push(() => closeConnection(queueConnection));
    await waitForReady(records).catch((err) => {
      throw new HandoffError(
        ErrorCodes.config,
        `cannot reach Redis at ${redactUrl(redisUrl!)}: ${(err as Error).message}`,
      );
    });
    const health = await redisHealth(records);
    if (health.evictionPolicy !== 'noeviction') {
      logger.error(
        { policy: health.evictionPolicy },
        'Redis maxmemory-policy is not noeviction: queued jobs and records can be evicted. Set `maxmemory-policy noeviction`.',
      );
    }
    if (!health.aof)
      logger.warn('Redis AOF is off: a Redis restart loses recent tasks and queued jobs. Set `appendonly yes`.');

    const state = new StateStore(records);
    const audit = new AuditLog(records);
    const queues = new Queues({ connection: records, ...(options.queuePrefix ? { prefix: options.queuePrefix } : {}) });
    cleanups.push(() => queues.close());
    const metrics = new Metrics({ defaultMetrics: mode !== 'dev' });
    let publicUrl = config.publicUrl ?? `http://${config.host}:${config.port}`;
    const signingSecret = config.signingSecret ?? (mode === 'dev' ? await devSigningSecret(dataDir) : undefined);
    if (!signingSecret)
      throw new HandoffError(
        ErrorCodes.config,
        'HANDOFF_SIGNING_SECRET (≥ 32 characters) is required outside `handoff dev`',
      );
    // Local files are served by the bot through signed links; S3 objects through presigned ones.
    const localStore = new LocalArtifactStore({
      root: join(dataDir, 'artifacts'),
      signingSecret,
      publicUrl: () => publicUrl,
    });
    const store: ArtifactStore = config.s3Bucket ? s3StoreFrom(config) : localStore;
    const provider: ModelProvider =
      options.provider ??
      (config.anthropicApiKey
        ? new AnthropicProvider({
            apiKey: config.anthropicApiKey,
            model: config.model,
            ...(config.anthropicBaseUrl ? { baseURL: config.anthropicBaseUrl } : {}),
          })
        : new DemoProvider());
    // The policy file is validated before anything starts: a typo must not pass silently.
    const policyDoc = loadPolicy(config.policyFile);
    // Self-approval: an explicit setting wins; then the policy file; `handoff dev` without
    // a policy file lets one person try the whole flow.
    // The dev exception is for the console only: a Slack workspace has other people to ask.
    const selfApproval = (effective: EffectiveChannelPolicy, conversation: ConversationRef) =>
      config.allowSelfApproval ??
      (config.policyFile
        ? effective.requesterMayApprove
        : (mode === 'dev' && conversation.surface === 'web') || effective.requesterMayApprove);
    const policyFor = (conversation: ConversationRef): PlanPolicy => {
      const effective = policyForChannel(policyDoc, conversation);
      const planPolicy: PlanPolicy = {
        ...toPlanPolicy(effective),
        allowSelfApproval: selfApproval(effective, conversation),
        // Without a policy file the deployment's setting decides how long approvals stay open.
        approvalExpiryMs: config.policyFile ? effective.approvalExpiryMs : config.approvalExpiryMs,
      };
      // Who approves on Slack: the policy's approvers for the channel when it names any,
      // else SLACK_APPROVERS (users and user groups), else anyone in the channel.
      const fromEnv =
        conversation.surface === 'slack' && !planPolicy.approvers
          ? slackApproversFor(config.slackApprovers ?? {}, conversation.channel)
          : undefined;
      if (fromEnv) {
        planPolicy.approvers = fromEnv.users;
        if (fromEnv.groups.length > 0) planPolicy.approverGroups = fromEnv.groups;
      }
      return planPolicy;
    };
    const policy = policyFor({ surface: 'web', channel: 'general', thread: '-' });
    await audit.append({ type: 'policy.loaded', data: { source: config.policyFile ?? 'built-in', mode } });
    const running: RunningHandoff = { redisUrl, close };

    if (mode === 'dev' || mode === 'runner') {
      const driver =
        options.driver ??
        new DockerSandboxDriver({
          image: config.sandboxImage,
          docker: new Dockerode(),
          sandboxUser: sandboxUser().user,
          logger,
        });
      cleanups.push(() => driver.close());
      try {
        await driver.ping();
        if (!(await driver.imagePresent()))
          logger.error(`sandbox image ${config.sandboxImage} is missing: run \`npm run sandbox:build\``);
      } catch (err) {
        logger.error(
          { err: asHandoffError(err).message },
          'Docker is not reachable: runs will retry, then fail with a clear message',
        );
      }
      const runner = new Runner(
        {
          state,
          queues,
          audit,
          store,
          driver,
          provider,
          logger,
          workspacesDir: join(dataDir, 'workspaces'),
          limits: {
            memoryMb: config.sandboxMemoryMb,
            cpus: config.sandboxCpus,
            pids: config.sandboxPids,
            tmpfsMb: config.sandboxTmpfsMb,
          },
          commandTimeoutMs: config.commandTimeoutMs,
          runTimeoutMs: config.runTimeoutMs,
          questionTimeoutMs: config.questionTimeoutMs,
          approvalExpiryMs: config.approvalExpiryMs,
          maxTokensPerRun: config.maxTokensPerRun,
          maxCostUsdPerRun: config.maxCostUsdPerRun,
          policyFor,
          prices: {
            inputPerMTok: config.priceInputPerMTok,
            outputPerMTok: config.priceOutputPerMTok,
            cacheReadPerMTok: config.priceInputPerMTok / 10,
            cacheWritePerMTok: config.priceInputPerMTok * 1.25,
          },
          policy,
        },
        {
          connection: queueConnection,
          ...(options.queuePrefix ? { prefix: options.queuePrefix } : {}),
          concurrency: config.runnerConcurrency,
          ...(options.lockDurationMs ? { lockDurationMs: options.lockDurationMs } : {}),
        },
      );
      cleanups.push(() => runner.close());
      await runner.waitUntilReady();
    }

    if (mode === 'dev' || mode === 'bot') {
      const consoleStore = new ConsoleStore(records);
      const slack = config.slackBotToken
        ? startSlack(config, { state, store, audit, queues, policy, redis: records, logger })
        : undefined;
      if (slack) cleanups.push(() => slack.close());
      const gateway = new Gateway({
        state,
        queues,
        audit,
        store,
        logger,
        metrics,
        policy,
        policyFor,
        // Approver groups are Slack user groups; the console has none, so there they approve nobody.
        inApproverGroup: async (conversation, who, groups) =>
          conversation.surface === 'slack' && slack ? slack.userGroups.includes(who.id, groups) : false,
        nameApprovers: (conversation, approvers) =>
          conversation.surface === 'slack' ? mentionApprovers(approvers) : undefined,
        limits: {
          maxUploadBytes: config.maxUploadBytes,
          maxFilesPerRequest: config.maxFilesPerRequest,
          maxRequestChars: config.maxRequestChars,
          downloadTtlMs: config.downloadTtlMs,
        },
        demo: provider.demo,
        surfaces: [new WebSurface(consoleStore), ...(slack ? [slack.surface] : [])],
      });
      await slack?.start(gateway);
      const notify: Worker = startNotifyWorker(gateway, queueConnection, logger, options.queuePrefix);
      cleanups.push(() => notify.close());
      const consoleEnabled = mode === 'dev' || Boolean(config.consoleToken);
      let consoleApp: ReturnType<typeof consoleRoutes> | undefined;
      if (consoleEnabled) {
        const subscriber = watchErrors(
          records.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null }),
          onRedisError,
        );
        cleanups.push(() => closeConnection(subscriber));
        consoleApp = consoleRoutes({
          gateway,
          store: consoleStore,
          subscriber,
          logger,
          mode: mode === 'dev' ? 'dev' : 'bot',
          ...(config.consoleToken ? { token: config.consoleToken } : {}),
          demo: provider.demo,
          model: provider.model,
          maxUploadBytes: config.maxUploadBytes,
          maxFiles: config.maxFilesPerRequest,
        });
      }
      const app = createHttpApp({
        redis: records,
        metrics,
        ...(store === localStore ? { localArtifacts: localStore } : {}),
        ...(consoleApp ? { console: consoleApp } : {}),
        ...(slack?.routes ? { slack: slack.routes } : {}),
      });
      const server: ServerType = await new Promise((resolveServer, reject) => {
        const s = serve({ fetch: app.fetch, port: config.port, hostname: config.host }, () => resolveServer(s));
        s.once('error', (err: NodeJS.ErrnoException) =>
          reject(
            err.code === 'EADDRINUSE'
              ? new HandoffError(ErrorCodes.config, `port ${config.port} is in use: set HANDOFF_PORT to another port`)
              : err,
          ),
        );
      });
      cleanups.push(
        () =>
          new Promise<void>((r) => {
            server.close(() => r());
            (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
          }),
      );
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : config.port;
      publicUrl = config.publicUrl ?? `http://${config.host}:${port}`;
      running.url = publicUrl;
      if (!consoleEnabled) logger.info('web console is off: set HANDOFF_CONSOLE_TOKEN to enable it');
    }
    return running;
  } catch (err) {
    await close();
    throw err;
  }
}

/** The Slack app and surface, when SLACK_BOT_TOKEN is set: HTTP receiver or Socket Mode. */
function startSlack(
  config: Config,
  deps: Pick<SlackOptions, 'state' | 'store' | 'audit' | 'queues' | 'policy' | 'redis' | 'logger'>,
): SlackIntegration {
  if (!config.slackSigningSecret && !config.slackAppToken) {
    throw new HandoffError(
      ErrorCodes.config,
      'SLACK_BOT_TOKEN is set: also set SLACK_SIGNING_SECRET (HTTP, /slack/events) or SLACK_APP_TOKEN (Socket Mode)',
    );
  }
  return createSlack({
    ...deps,
    botToken: config.slackBotToken!,
    ...(config.slackSigningSecret ? { signingSecret: config.slackSigningSecret } : {}),
    ...(config.slackAppToken ? { appToken: config.slackAppToken } : {}),
    ...(config.slackApiUrl
      ? { apiUrl: config.slackApiUrl.endsWith('/') ? config.slackApiUrl : `${config.slackApiUrl}/` }
      : {}),
    limits: {
      maxInputBytes: config.maxUploadBytes,
      maxFilesPerRequest: config.maxFilesPerRequest,
      maxUploadBytes: config.slackMaxUploadBytes,
    },
    nativeProgress: config.slackNativeProgress,
  });
}

/** `handoff dev` keeps one signing secret in its data dir so links survive restarts. */
async function devSigningSecret(dataDir: string): Promise<string> {
  const path = join(dataDir, 'signing-secret');
  try {
    const existing = (await readFile(path, 'utf8')).trim();
    if (existing.length >= 32) return existing;
  } catch {
    // first start: create it below
  }
  await mkdir(dataDir, { recursive: true });
  const secret = randomBytes(32).toString('base64url');
  await writeFile(path, secret, { mode: 0o600 });
  return secret;
}

function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

const help = `handoff — hand work to an AI coworker from chat

Usage: handoff <command>

Commands:
  dev       everything in one process: bot + runner + web console, its own redis-server
            (unless REDIS_URL is set), the Docker sandbox, the demo model without ANTHROPIC_API_KEY
  bot       the chat gateway: web console (with HANDOFF_CONSOLE_TOKEN), downloads, /healthz, /metrics
  runner    the workers: planning and runs in Docker sandboxes
  doctor    checks Redis, Docker, the sandbox image, the model and the port, with the fix for each
  config    prints every setting with its env variable and default
  policy check FILE                              validates a policy file (exit 1 with every problem)
  policy explain --channel C [--action A]        which rule applies to a channel, and why
  audit verify                                   checks the audit chain (REDIS_URL); exit 1 names the first bad record
  audit export [--since T] [--to DIR|s3]         writes JSONL segments and a digest
  audit prune [--older-than-days N]              removes exported records older than N days (HANDOFF_AUDIT_RETENTION_DAYS)

Settings come from the environment and an optional handoff.yaml (see README).`;

/** The CLI. Returns the exit code for one-shot commands; long-running ones resolve on shutdown. */
export async function cli(argv: string[]): Promise<number> {
  const command = argv[0];
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    console.log(help);
    return command ? 0 : 1;
  }
  if (command === 'config') {
    console.log(settingsTable());
    return 0;
  }
  if (command === 'policy') return policyCommand(argv.slice(1));
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    console.error(`handoff: ${(err as Error).message}`);
    return 2;
  }
  if (command === 'audit') return auditCommand(argv.slice(1), config);
  if (command === 'doctor') {
    const { doctor } = await import('./doctor.ts');
    return doctor(config);
  }
  if (command !== 'dev' && command !== 'bot' && command !== 'runner') {
    console.error(`handoff: unknown command ${JSON.stringify(command)}\n\n${help}`);
    return 2;
  }
  const logger = createLogger(config.logLevel, 'handoff', { scrubText: config.logRedaction });
  let running: RunningHandoff;
  try {
    running = await startHandoff({ config, mode: command, logger });
  } catch (err) {
    const e = asHandoffError(err);
    logger.fatal({ code: e.code }, e.message);
    return 1;
  }
  if (running.url) {
    const demo = config.anthropicApiKey ? '' : ' (demo model: set ANTHROPIC_API_KEY to use Claude)';
    console.log(`\nHandoff is running${demo}.\nWeb console: ${running.url}\n`);
  } else {
    logger.info('runner started');
  }
  await new Promise<void>((resolveStop) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'shutting down');
      void running.close().then(resolveStop);
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  return 0;
}

function policyCommand(args: string[]): number {
  try {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { channel: { type: 'string' }, action: { type: 'string' }, policy: { type: 'string' } },
    });
    if (positionals[0] === 'check' && positionals[1]) return policyCheck(positionals[1]);
    if (positionals[0] === 'explain' && values.channel) {
      const policy = loadPolicy(values.policy ?? process.env.HANDOFF_POLICY);
      console.log(
        policyExplain(policy, { channel: values.channel, ...(values.action ? { action: values.action } : {}) }),
      );
      return 0;
    }
  } catch (err) {
    console.error(`handoff: ${(err as Error).message}`);
    return 1;
  }
  console.error('usage: handoff policy check FILE | handoff policy explain --channel C [--action A] [--policy FILE]');
  return 2;
}

async function auditCommand(args: string[], config: Config): Promise<number> {
  let parsed: ReturnType<
    typeof parseArgs<{
      allowPositionals: true;
      options: { since: { type: 'string' }; to: { type: 'string' }; 'older-than-days': { type: 'string' } };
    }>
  >;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: { since: { type: 'string' }, to: { type: 'string' }, 'older-than-days': { type: 'string' } },
    });
  } catch (err) {
    console.error(`handoff: ${(err as Error).message}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (!config.redisUrl) {
    console.error('handoff: set REDIS_URL to the Redis that holds the audit log');
    return 2;
  }
  if (positionals[0] === 'verify') return auditVerify(config.redisUrl);
  if (positionals[0] === 'export') {
    // `--to s3` writes the segments to the configured bucket (HANDOFF_S3_BUCKET), e.g. one with Object Lock.
    let to: string | ArtifactStore | undefined = values.to;
    if (values.to === 's3') {
      if (!config.s3Bucket) {
        console.error('handoff: --to s3 needs HANDOFF_S3_BUCKET');
        return 2;
      }
      to = s3StoreFrom(config);
    }
    return auditExport(config.redisUrl, { ...(values.since ? { since: values.since } : {}), ...(to ? { to } : {}) });
  }
  if (positionals[0] === 'prune') {
    return auditPrune(config.redisUrl, {
      olderThanDays: Number(values['older-than-days'] ?? config.auditRetentionDays),
    });
  }
  console.error('usage: handoff audit verify | export [--since T] [--to DIR] | prune [--older-than-days N]');
  return 2;
}

function s3StoreFrom(config: Config): S3ArtifactStore {
  return new S3ArtifactStore({
    bucket: config.s3Bucket!,
    ...(config.s3Prefix ? { prefix: config.s3Prefix } : {}),
    ...(config.s3Region ? { region: config.s3Region } : {}),
    ...(config.s3Endpoint ? { endpoint: config.s3Endpoint } : {}),
  });
}
