import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { type ServerType, serve } from '@hono/node-server';
import type { Worker } from 'bullmq';
import Dockerode from 'dockerode';
import type { Redis } from 'ioredis';
import {
  ConnectionService,
  loadSkills,
  type ModelProvider,
  parseConnectionsKey,
  skillMounts,
  skillSources,
  TokenStore,
} from './agent/index.ts';
import { loadPolicy, planPolicyResolver } from './approvals/index.ts';
import {
  type ConsoleAccess,
  ConsoleSessions,
  ConsoleStore,
  ConsoleUsers,
  connectionRoutes,
  consoleRoutes,
  createHttpApp,
  createMetricsApp,
  createSlack,
  createTeams,
  Gateway,
  type MetricsAccess,
  mentionApprovers,
  OidcSignIn,
  type SlackIntegration,
  type SlackOptions,
  slackApproversFor,
  startNotifyWorker,
  startScheduleWorker,
  type TeamsIntegration,
  WebSurface,
} from './bot/index.ts';
import type { Config, ConnectorConfig } from './config/index.ts';
import { asHandoffError, ErrorCodes, HandoffError, newId, type Prices } from './core/index.ts';
import { modelProviderFromConfig, timedProvider } from './model-provider.ts';
import { createLogger, type Logger, Metrics, otlpTracesUrl, startTracing } from './observability/index.ts';
import { QueueDepthReader, Queues } from './queue/index.ts';
import {
  DockerSandboxDriver,
  type EgressNetwork,
  Runner,
  type SandboxDriver,
  sandboxUser,
  unknownConnectors,
  WarmPool,
} from './runner/index.ts';
import {
  type ArtifactStore,
  AuditLog,
  ChannelSettingsStore,
  closeConnection,
  createQueueConnection,
  createRecordConnection,
  type EmbeddedRedis,
  GrantStore,
  LocalArtifactStore,
  redisHealth,
  redisHealthProblems,
  S3ArtifactStore,
  ScheduleStore,
  StateStore,
  startRedisServer,
  waitForReady,
  watchErrors,
} from './storage/index.ts';

// The CLI lives in src/cli/ (docs/cli.md); re-exported for callers that import main.ts.
export { cli } from './cli/index.ts';

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
  /** How often the runner's janitor and reconciler run (default 30 s); shorter in tests. */
  sweepIntervalMs?: number;
  /** Connectors from handoff.yaml's `connectors:` section (docs/connectors.md). */
  connectors?: ConnectorConfig[];
  /** Where connectors' `env:` references are read from (default process.env). */
  connectorEnv?: NodeJS.ProcessEnv;
  /** DNS and connect for sandbox egress and web_fetch (tests map test names to loopback servers). */
  egressNetwork?: EgressNetwork;
  /** Extra Agent Skills folders (handoff.yaml `skills.paths`), besides `<dataDir>/skills` and the built-in ones. */
  skillPaths?: string[];
}

export interface RunningHandoff {
  /** Base URL of the bot's HTTP server (bot and dev). */
  url?: string;
  /** Base URL of the metrics server, when HANDOFF_METRICS_PORT is set (bot, dev, and runner with /healthz and /readyz). */
  metricsUrl?: string;
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
    // Every cleanup runs even if one fails or hangs, newest first, within the shutdown time
    // (each step gets what is left of it, and at least 2 s): a step that does not finish
    // is left behind so the next ones (the dev Redis last) still run.
    const deadline = Date.now() + config.shutdownTimeoutMs;
    for (const step of cleanups.reverse()) {
      const what = step.toString().replace(/\s+/g, ' ').slice(0, 80);
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolveLate) => {
        timer = setTimeout(() => resolveLate('late'), Math.max(2000, deadline - Date.now()));
      });
      const outcome = await Promise.race([
        step().catch((err) => logger.warn({ err, step: what }, 'cleanup step failed')),
        late,
      ]);
      clearTimeout(timer);
      if (outcome === 'late') logger.warn({ step: what }, 'cleanup step did not finish in time; going on without it');
    }
    cleanups.length = 0;
  };

  try {
    // Checked before anything starts: a console that would trust typed names must not come up.
    const signin = mode === 'runner' ? 'off' : consoleSigninFor(config, mode);
    // Off unless an OTLP endpoint is set (docs/operations.md, Tracing); closed last, so it flushes every span.
    const tracing = await startTracing({
      url: otlpTracesUrl(config),
      serviceName: config.otelServiceName ?? `handoff-${mode}`,
      logger,
    });
    cleanups.push(() => tracing.shutdown());
    let redisUrl = config.redisUrl;
    if (!redisUrl) {
      if (mode !== 'dev')
        throw new HandoffError(ErrorCodes.config, 'REDIS_URL is required for `handoff bot` and `handoff runner`');
      const embedded: EmbeddedRedis = await startRedisServer({
        dir: join(dataDir, 'redis'),
        logger,
        // A restart right after a stop (npm killed, then started again) waits for the old one to finish.
        waitForOwnerMs: config.shutdownTimeoutMs + 5000,
      });
      cleanups.push(() => embedded.stop());
      redisUrl = embedded.url;
      logger.info({ redisUrl }, 'started redis-server');
    }
    const onRedisError = (err: Error) => logger.warn({ err: err.message }, 'Redis connection problem; retrying');
    const records = createRecordConnection(redisUrl, {}, onRedisError);
    cleanups.push(() => closeConnection(records));
    // Producers of BullMQ jobs, with the same fail-fast terms as records. A connection of their
    // own: BullMQ defines its many scripts on the connection it is given, and an auto-pipelined
    // connection copies every defined script into each pipeline it makes.
    const producers = createRecordConnection(redisUrl, { enableAutoPipelining: false }, onRedisError);
    cleanups.push(() => closeConnection(producers));
    const queueConnection: Redis = createQueueConnection(redisUrl, {}, onRedisError);
    cleanups.push(() => closeConnection(queueConnection));
    await Promise.all([waitForReady(records), waitForReady(producers)]).catch((err) => {
      throw new HandoffError(
        ErrorCodes.config,
        `cannot reach Redis at ${redactUrl(redisUrl!)}: ${(err as Error).message}`,
      );
    });
    // Read through INFO where CONFIG is disabled (managed services); unconfirmed settings are warnings.
    for (const problem of redisHealthProblems(await redisHealth(records)))
      logger[problem.level](problem.details, problem.message);

    const retentionMs = config.retentionDays * 86_400_000;
    const metrics = new Metrics({ defaultMetrics: mode !== 'dev' });
    const state = new StateStore(records, { retentionMs, metrics });
    const audit = new AuditLog(records, { metrics });
    const queuePrefix = options.queuePrefix ? { prefix: options.queuePrefix } : {};
    const queues = new Queues({ connection: producers, retentionMs, ...queuePrefix });
    cleanups.push(() => queues.close());
    // Queue depths are read from Redis at scrape time, by bots and runners alike.
    const queueDepths = new QueueDepthReader({ connection: producers, ...queuePrefix });
    cleanups.push(() => queueDepths.close());
    metrics.observeQueues(() => queueDepths.read());
    let publicUrl = config.publicUrl ?? `http://${urlHost(config.host)}:${config.port}`;
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
    // Anthropic API, Bedrock, Vertex or the demo model; a setting that cannot work fails here.
    const provider: ModelProvider = timedProvider(options.provider ?? modelProviderFromConfig(config), metrics);
    // The policy file is validated before anything starts: a typo must not pass silently.
    const policyDoc = loadPolicy(config.policyFile);
    // Self-approval, approval expiry and approvers per conversation (rules in channel-policy.ts).
    const policyFor = planPolicyResolver({
      doc: policyDoc,
      hasPolicyFile: Boolean(config.policyFile),
      mode,
      allowSelfApproval: config.allowSelfApproval,
      approvalExpiryMs: config.approvalExpiryMs,
      // Who approves on Slack when the policy names no one there: SLACK_APPROVERS.
      envApprovers: (conversation) =>
        conversation.surface === 'slack'
          ? slackApproversFor(config.slackApprovers ?? {}, conversation.channel)
          : undefined,
    });
    const policy = policyFor({ surface: 'web', channel: 'general', thread: '-' });
    const connectors = options.connectors ?? [];
    // Connectors with `auth:` act as the person who asked; their tokens are kept encrypted
    // with HANDOFF_CONNECTIONS_KEY. One service for the bot (Connect buttons, the callback)
    // and the runner (each run's connections).
    const connections = await perUserConnections(config, mode, connectors, {
      records,
      dataDir,
      logger,
      publicUrl: () => publicUrl,
      ...(options.connectorEnv ? { env: options.connectorEnv } : {}),
    });
    for (const problem of unknownConnectors(policyDoc, connectors)) logger.warn(problem);
    await audit.append({ type: 'policy.loaded', data: { source: config.policyFile ?? 'built-in', mode } });
    const running: RunningHandoff = { redisUrl, close };

    if (mode === 'dev' || mode === 'runner') {
      // Read once at start; a broken skill folder is named in a warning and the rest load.
      const skills = loadSkills(
        skillSources({
          dataDir,
          paths: options.skillPaths ?? [],
          ...(config.builtInSkillsDir ? { builtIn: config.builtInSkillsDir } : {}),
        }),
      );
      for (const problem of skills.problems) logger.warn({ problem }, 'a skill could not be loaded');
      for (const line of skills.shadowed) logger.warn({ shadowed: line }, 'two skills have the same name');
      logger.info({ skills: skills.skills.map((s) => s.name) }, 'skills loaded');
      const runnerId = config.runnerId ?? `${hostname()}-${process.pid}-${newId('r').slice(2, 8)}`;
      const sandboxLimits = {
        memoryMb: config.sandboxMemoryMb,
        cpus: config.sandboxCpus,
        pids: config.sandboxPids,
        tmpfsMb: config.sandboxTmpfsMb,
        outputMb: config.sandboxOutputMb,
      };
      const dockerDriver = options.driver
        ? undefined
        : new DockerSandboxDriver({
            image: config.sandboxImage,
            docker: new Dockerode(),
            sandboxUser: sandboxUser().user,
            logger,
            metrics,
          });
      // The warm pool (docs/operations.md): idle hardened containers, each handed to one run only.
      const pool =
        dockerDriver && config.sandboxWarmPool > 0
          ? new WarmPool(dockerDriver, {
              size: config.sandboxWarmPool,
              limits: sandboxLimits,
              runnerId,
              // What a run in a channel that does not narrow its skills mounts (run-skills.ts).
              readOnlyMounts: skillMounts(skills.skills),
              dir: join(dataDir, 'sandbox-pool'),
              logger,
              metrics,
            })
          : undefined;
      const driver: SandboxDriver = options.driver ?? pool ?? dockerDriver!;
      // Runs after runner.close() (cleanups run in reverse): the pool is drained once no run can claim.
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
      // The runner's records wait out a Redis outage (commands queue while it reconnects)
      // instead of failing a run; a runner that lost its job meanwhile is fenced off by
      // the checkpoint's owner check. The bot's stay fail-fast: a person is told at once.
      const runnerRecords = createQueueConnection(redisUrl, {}, onRedisError);
      cleanups.push(() => closeConnection(runnerRecords));
      const runnerQueues = new Queues({ connection: runnerRecords, retentionMs, ...queuePrefix });
      cleanups.push(() => runnerQueues.close());
      const runner = new Runner(
        {
          state: new StateStore(runnerRecords, { retentionMs, metrics }),
          channelSettings: new ChannelSettingsStore(runnerRecords, { retentionMs }),
          queues: runnerQueues,
          audit: new AuditLog(runnerRecords, { metrics }),
          store,
          driver,
          provider,
          logger,
          metrics,
          workspacesDir: join(dataDir, 'workspaces'),
          runnerId,
          pausedSandboxTtlMs: config.pausedSandboxTtlMs,
          maxTokensPerCall: config.maxTokensPerCall,
          maxArtifactBytesPerRun: config.maxArtifactBytesPerRun,
          limits: sandboxLimits,
          commandTimeoutMs: config.commandTimeoutMs,
          runTimeoutMs: config.runTimeoutMs,
          questionTimeoutMs: config.questionTimeoutMs,
          approvalExpiryMs: config.approvalExpiryMs,
          maxTokensPerRun: config.maxTokensPerRun,
          maxCostUsdPerRun: config.maxCostUsdPerRun,
          policyFor,
          prices: pricesFrom(config),
          policy,
          connectors,
          skills,
          grants: new GrantStore(runnerRecords, retentionMs),
          ...(connections.service ? { connections: connections.service } : {}),
          ...(options.connectorEnv ? { connectorEnv: options.connectorEnv } : {}),
          ...(options.egressNetwork ? { egressNetwork: options.egressNetwork } : {}),
        },
        {
          connection: queueConnection,
          ...queuePrefix,
          concurrency: config.runnerConcurrency,
          workstreamConcurrency: config.workstreamConcurrency,
          maxParallelWorkstreams: config.maxParallelWorkstreams,
          lockDurationMs: options.lockDurationMs ?? config.lockDurationMs,
          stalledIntervalMs: config.stalledIntervalMs,
          maxStalledCount: config.maxStalledCount,
          ...(options.sweepIntervalMs ? { sweepIntervalMs: options.sweepIntervalMs } : {}),
        },
      );
      cleanups.push(() => runner.close());
      await runner.waitUntilReady();
      await pool?.start();
      // The runner has no other HTTP server: /metrics, /healthz and /readyz on their own port.
      if (mode === 'runner' && config.metricsPort !== undefined) {
        running.metricsUrl = await serveMetricsPort(config, config.metricsPort, metrics, cleanups, runner);
      } else if (mode === 'runner') {
        logger.info('/metrics, /healthz and /readyz are not served: set HANDOFF_METRICS_PORT (a port on HANDOFF_HOST)');
      }
    }

    if (mode === 'dev' || mode === 'bot') {
      const consoleStore = new ConsoleStore(records, { retentionMs });
      const slack = config.slackBotToken
        ? startSlack(config, { state, store, audit, queues, policy, redis: records, logger, metrics })
        : undefined;
      if (slack) cleanups.push(() => slack.close());
      const teams = config.teamsAppId
        ? startTeams(config, { store, audit, redis: records, logger, retentionMs, metrics })
        : undefined;
      if (teams) cleanups.push(() => teams.close());
      const gateway = new Gateway({
        state,
        schedules: new ScheduleStore(records, retentionMs),
        grants: new GrantStore(records, retentionMs),
        grantRetentionMs: retentionMs,
        queues,
        audit,
        store,
        logger,
        metrics,
        policy,
        policyFor,
        // Approver groups are Slack user groups, or Entra groups resolved through Graph on
        // Teams; the console has none, so there they approve nobody.
        inApproverGroup: async (conversation, who, groups) => {
          if (conversation.surface === 'slack' && slack) return slack.userGroups.includes(who.id, groups);
          if (conversation.surface === 'teams' && teams) return teams.inApproverGroup(who, groups);
          return false;
        },
        nameApprovers: (conversation, approvers) =>
          conversation.surface === 'slack' ? mentionApprovers(approvers) : undefined,
        limits: {
          maxUploadBytes: config.maxUploadBytes,
          maxFilesPerRequest: config.maxFilesPerRequest,
          maxRequestChars: config.maxRequestChars,
          downloadTtlMs: config.downloadTtlMs,
          threadContextMessages: config.threadContextMessages,
          threadContextChars: config.threadContextChars,
        },
        demo: provider.demo,
        surfaces: [new WebSurface(consoleStore), ...(slack ? [slack.surface] : []), ...(teams ? [teams.surface] : [])],
        ...(connections.service ? { connections: connections.service } : {}),
        ...(connections.unavailable ? { connectionsUnavailable: connections.unavailable } : {}),
        channelSettings: new ChannelSettingsStore(records, { retentionMs }),
      });
      // Where authorization servers send people back after Connect (outside the console's sign-in).
      const connectionsApp = connections.service
        ? connectionRoutes(connections.service, {
            onConnected: (user, connector, context) => gateway.connectionConnected(user, connector, context),
            onDeclined: (user, connector, context) => gateway.connectionDeclined(user, connector, context),
            // Connection errors carry no token material; only their code and words are logged.
            onError: (err) => {
              const e = asHandoffError(err);
              logger.warn({ code: e.code, reason: e.message }, 'per-user connection: the sign-in did not complete');
            },
          })
        : undefined;
      await slack?.start(gateway);
      teams?.start(gateway);
      const notify: Worker = startNotifyWorker(gateway, queueConnection, logger, {
        ...(options.queuePrefix ? { prefix: options.queuePrefix } : {}),
        concurrency: config.notifyConcurrency,
      });
      cleanups.push(() => notify.close());
      // The records are the truth: clocks are made to match them, and ticks missed while
      // nothing ran are caught up once. Not fatal: the next start tries again.
      await gateway.schedules
        .reconcile()
        .then((r) => logger.info(r, 'schedules reconciled'))
        .catch((err) => logger.warn({ err }, 'could not reconcile the schedules'));
      const ticks: Worker = startScheduleWorker(gateway.schedules, queueConnection, logger, {
        ...(options.queuePrefix ? { prefix: options.queuePrefix } : {}),
      });
      cleanups.push(() => ticks.close());
      // Who may use the console: people who sign in; under `handoff dev` without sign-in,
      // typed names behind the shared token (or nothing, on loopback); else it is off.
      const access: ConsoleAccess | undefined =
        signin === 'tokens' || signin === 'oidc'
          ? {
              kind: 'signin',
              method: signin,
              sessions: new ConsoleSessions(records, config.consoleSessionTtlMs),
              users: new ConsoleUsers(records),
              ...(signin === 'oidc'
                ? {
                    oidc: new OidcSignIn({
                      issuer: config.oidcIssuer!,
                      clientId: config.oidcClientId!,
                      clientSecret: config.oidcClientSecret!,
                      scopes: config.oidcScopes,
                      redirectUri: () => new URL('/auth/callback', publicUrl).href,
                      redis: records,
                      logger,
                    }),
                  }
                : {}),
            }
          : mode === 'dev'
            ? config.consoleToken
              ? { kind: 'shared-token', token: config.consoleToken }
              : { kind: 'open' }
            : undefined;
      if (mode === 'bot' && access && config.consoleToken)
        logger.warn('HANDOFF_CONSOLE_TOKEN is ignored under `handoff bot`: people sign in to the console');
      const consoleEnabled = access !== undefined;
      let consoleApp: ReturnType<typeof consoleRoutes> | undefined;
      if (access) {
        const subscriber = watchErrors(
          records.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null, enableAutoPipelining: false }),
          onRedisError,
        );
        cleanups.push(() => closeConnection(subscriber));
        consoleApp = consoleRoutes({
          gateway,
          store: consoleStore,
          subscriber,
          logger,
          mode: mode === 'dev' ? 'dev' : 'bot',
          access,
          publicUrl: () => publicUrl,
          demo: provider.demo,
          model: provider.model,
          maxUploadBytes: config.maxUploadBytes,
          maxFiles: config.maxFilesPerRequest,
          spoolDir: join(dataDir, 'uploads'),
        });
      }
      // /metrics: open on the main port only for `handoff dev` on loopback; elsewhere it
      // needs HANDOFF_METRICS_TOKEN there, or is served on HANDOFF_METRICS_PORT alone.
      const metricsAccess: MetricsAccess = config.metricsToken
        ? { bearerToken: config.metricsToken }
        : mode === 'dev' && isLoopbackHost(config.host)
          ? 'open'
          : 'none';
      if (config.metricsPort !== undefined) {
        running.metricsUrl = await serveMetricsPort(config, config.metricsPort, metrics, cleanups);
      } else if (metricsAccess === 'none') {
        logger.info(
          '/metrics is not served: set HANDOFF_METRICS_PORT (a port on HANDOFF_HOST) or HANDOFF_METRICS_TOKEN',
        );
      }
      const app = createHttpApp({
        redis: records,
        metrics,
        metricsAccess,
        // `handoff dev` answers only to its own names (DNS rebinding); the bot's console is signed in.
        ...(mode === 'dev' ? { allowedHosts: devHostNames(config) } : {}),
        ...(store === localStore ? { localArtifacts: localStore } : {}),
        ...(consoleApp ? { console: consoleApp } : {}),
        ...(slack?.routes ? { slack: slack.routes } : {}),
        ...(teams ? { teams: teams.routes } : {}),
        ...(connectionsApp ? { connections: connectionsApp } : {}),
      });
      const server = await listenOn(app, config.port, config.host, 'HANDOFF_PORT');
      cleanups.push(() => closeServer(server));
      publicUrl = config.publicUrl ?? `http://${urlHost(config.host)}:${serverPort(server, config.port)}`;
      running.url = publicUrl;
      if (!consoleEnabled)
        logger.info('web console is off: set HANDOFF_CONSOLE_SIGNIN=tokens or HANDOFF_OIDC_ISSUER to enable it');
    }
    return running;
  } catch (err) {
    await close();
    throw err;
  }
}

/** The Teams app and surface, when TEAMS_APP_ID is set: `POST /api/messages` on the bot's port. */
function startTeams(
  config: Config,
  deps: { store: ArtifactStore; audit: AuditLog; redis: Redis; logger: Logger; retentionMs: number; metrics: Metrics },
): TeamsIntegration {
  if (!config.teamsAppPassword)
    throw new HandoffError(
      ErrorCodes.config,
      'TEAMS_APP_ID is set: also set TEAMS_APP_PASSWORD (the app registration’s client secret)',
    );
  if (config.teamsGraphEnabled && !config.teamsTenantId)
    throw new HandoffError(
      ErrorCodes.config,
      'TEAMS_GRAPH_ENABLED needs TEAMS_TENANT_ID: Graph is asked in your tenant',
    );
  return createTeams({
    ...deps,
    appId: config.teamsAppId!,
    appPassword: config.teamsAppPassword,
    ...(config.teamsTenantId ? { tenantId: config.teamsTenantId } : {}),
    openIdMetadataUrl: config.teamsOpenidMetadataUrl,
    ...(config.teamsTokenEndpoint ? { tokenEndpoint: config.teamsTokenEndpoint } : {}),
    serviceUrlAllowlist: config.teamsServiceUrlAllowlist,
    fileHosts: config.teamsFileHosts,
    ...(config.teamsGraphEnabled ? { graphUrl: config.teamsGraphUrl } : {}),
    limits: {
      maxInputBytes: config.maxUploadBytes,
      maxFilesPerRequest: config.maxFilesPerRequest,
      maxUploadBytes: config.teamsMaxUploadBytes,
      threadContextMessages: config.threadContextMessages,
    },
    inboundConcurrency: config.inboundConcurrency,
    inboundBatchMs: config.inboundBatchMs,
  });
}

/** The Slack app and surface, when SLACK_BOT_TOKEN is set: HTTP receiver or Socket Mode. */
function startSlack(
  config: Config,
  deps: Pick<SlackOptions, 'state' | 'store' | 'audit' | 'queues' | 'policy' | 'redis' | 'logger' | 'metrics'>,
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
      threadContextMessages: config.threadContextMessages,
    },
    nativeProgress: config.slackNativeProgress,
    inboundConcurrency: config.inboundConcurrency,
    inboundBatchMs: config.inboundBatchMs,
  });
}

/**
 * How console users sign in, refusing settings that would let the console trust typed
 * names where it must not: the shared token under `handoff bot`, and `handoff dev` on a
 * non-loopback address without the token.
 */
function consoleSigninFor(config: Config, mode: 'dev' | 'bot'): 'off' | 'tokens' | 'oidc' {
  const signin = config.consoleSignin ?? (config.oidcIssuer ? 'oidc' : 'off');
  if (signin === 'oidc') {
    const missing = [
      config.oidcIssuer ? '' : 'HANDOFF_OIDC_ISSUER',
      config.oidcClientId ? '' : 'HANDOFF_OIDC_CLIENT_ID',
      config.oidcClientSecret ? '' : 'HANDOFF_OIDC_CLIENT_SECRET',
    ].filter(Boolean);
    if (missing.length > 0)
      throw new HandoffError(ErrorCodes.config, `console sign-in with OpenID Connect also needs ${missing.join(', ')}`);
  }
  if (mode === 'bot' && signin === 'off' && config.consoleToken) {
    throw new HandoffError(
      ErrorCodes.config,
      'HANDOFF_CONSOLE_TOKEN is one shared secret that tells nobody apart, so `handoff bot` no longer accepts it: ' +
        'set HANDOFF_CONSOLE_SIGNIN=tokens (and add people with `handoff console add-user NAME`), or HANDOFF_OIDC_ISSUER ' +
        'with HANDOFF_OIDC_CLIENT_ID and HANDOFF_OIDC_CLIENT_SECRET; then remove HANDOFF_CONSOLE_TOKEN',
    );
  }
  if (mode === 'dev' && signin === 'off' && !config.consoleToken && !isLoopbackHost(config.host)) {
    throw new HandoffError(
      ErrorCodes.config,
      `\`handoff dev\` listens on ${config.host}, which is not a loopback address, and its console takes any typed name: ` +
        'set HANDOFF_CONSOLE_TOKEN (every console request then needs it) or HANDOFF_CONSOLE_SIGNIN, or HANDOFF_HOST=127.0.0.1',
    );
  }
  return signin;
}

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** An address as it appears in a URL or Host header (IPv6 in brackets), lower case. */
function urlHost(host: string): string {
  return (host.includes(':') && !host.startsWith('[') ? `[${host}]` : host).toLowerCase();
}

/** The Host names `handoff dev` answers to: its own address, the loopback names and the public URL's host. */
function devHostNames(config: Config): string[] {
  const names = new Set([urlHost(config.host), 'localhost', '127.0.0.1', '[::1]']);
  if (config.publicUrl) names.add(new URL(config.publicUrl).hostname.toLowerCase());
  return [...names];
}

/**
 * `/metrics` (and, given probes, the runner's `/healthz` and `/readyz`) alone on
 * HANDOFF_METRICS_PORT, behind HANDOFF_METRICS_TOKEN when it is set; closed with the rest.
 * Returns the server's base URL.
 */
async function serveMetricsPort(
  config: Config,
  port: number,
  metrics: Metrics,
  cleanups: Array<() => Promise<unknown>>,
  probes?: Parameters<typeof createMetricsApp>[2],
): Promise<string> {
  const access = config.metricsToken ? { bearerToken: config.metricsToken } : ('open' as const);
  const server = await listenOn(createMetricsApp(metrics, access, probes), port, config.host, 'HANDOFF_METRICS_PORT');
  cleanups.push(() => closeServer(server));
  return `http://${urlHost(config.host)}:${serverPort(server, port)}`;
}

async function listenOn(
  app: { fetch: Parameters<typeof serve>[0]['fetch'] },
  port: number,
  host: string,
  setting: string,
) {
  return new Promise<ServerType>((resolveServer, reject) => {
    const s = serve({ fetch: app.fetch, port, hostname: host }, () => resolveServer(s));
    s.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? new HandoffError(ErrorCodes.config, `port ${port} is in use: set ${setting} to another port`)
          : err,
      ),
    );
  });
}

function closeServer(server: ServerType): Promise<void> {
  return new Promise<void>((r) => {
    server.close(() => r());
    (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
  });
}

function serverPort(server: ServerType, fallback: number): number {
  const address = server.address();
  return typeof address === 'object' && address ? address.port : fallback;
}

/** Token prices in USD per million; cache prices default to the API's usual ratios to input. */
function pricesFrom(config: Config): Prices {
  return {
    inputPerMTok: config.priceInputPerMTok,
    outputPerMTok: config.priceOutputPerMTok,
    cacheReadPerMTok: config.priceCacheReadPerMTok ?? config.priceInputPerMTok / 10,
    cacheWritePerMTok: config.priceCacheWritePerMTok ?? config.priceInputPerMTok * 1.25,
  };
}

/**
 * The per-user connections service, when connectors with `auth:` are configured and a key
 * is available (HANDOFF_CONNECTIONS_KEY; `handoff dev` keeps one in its data dir). Without
 * a key those connectors are unavailable: one warning, and `unavailable` says why to people.
 */
async function perUserConnections(
  config: Config,
  mode: Mode,
  connectors: readonly ConnectorConfig[],
  deps: { records: Redis; dataDir: string; logger: Logger; publicUrl: () => string; env?: NodeJS.ProcessEnv },
): Promise<{ service?: ConnectionService; unavailable?: string }> {
  const perUser = connectors.filter((c) => c.perUser).map((c) => c.name);
  if (perUser.length === 0) return {};
  const keyText = config.connectionsKey ?? (mode === 'dev' ? await devConnectionsKey(deps.dataDir) : undefined);
  if (!keyText) {
    deps.logger.warn(
      { connectors: perUser },
      `connectors ${perUser.join(', ')} act as each person (auth: in handoff.yaml), but HANDOFF_CONNECTIONS_KEY is not set: they are unavailable until it is (32 random bytes, e.g. \`openssl rand -base64 32\`)`,
    );
    return {
      unavailable:
        'per-user connections are not set up on this Handoff: an admin must set HANDOFF_CONNECTIONS_KEY first',
    };
  }
  let key: Buffer;
  try {
    key = parseConnectionsKey(keyText);
  } catch (err) {
    throw new HandoffError(ErrorCodes.config, `HANDOFF_CONNECTIONS_KEY: ${(err as Error).message}`);
  }
  const { publicUrl } = deps;
  const service = new ConnectionService({
    store: new TokenStore(deps.records, key),
    connectors,
    // Read at each sign-in: `handoff dev` on a free port knows its URL only once it listens.
    get publicUrl() {
      return publicUrl();
    },
    ...(deps.env ? { env: deps.env } : {}),
  });
  return { service };
}

/**
 * `handoff dev` keeps one connections key in its data dir (mode 0600), so connections
 * survive restarts. A key file that is there but unreadable is an error, never replaced:
 * replacing it would disconnect everyone.
 */
async function devConnectionsKey(dataDir: string): Promise<string> {
  const path = join(dataDir, 'connections-key');
  let existing: string | undefined;
  try {
    existing = (await readFile(path, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (existing !== undefined) {
    try {
      parseConnectionsKey(existing);
    } catch (err) {
      throw new HandoffError(
        ErrorCodes.config,
        `${path}: ${(err as Error).message}; remove the file to start over (everyone connects again)`,
      );
    }
    return existing;
  }
  await mkdir(dataDir, { recursive: true });
  const key = randomBytes(32).toString('base64');
  await writeFile(path, key, { mode: 0o600, flag: 'wx' });
  return key;
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

function s3StoreFrom(config: Config): S3ArtifactStore {
  return new S3ArtifactStore({
    bucket: config.s3Bucket!,
    ...(config.s3Prefix ? { prefix: config.s3Prefix } : {}),
    ...(config.s3Region ? { region: config.s3Region } : {}),
    ...(config.s3Endpoint ? { endpoint: config.s3Endpoint } : {}),
  });
}
