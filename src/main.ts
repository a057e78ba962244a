import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { type ServerType, serve } from '@hono/node-server';
import type { Worker } from 'bullmq';
import Dockerode from 'dockerode';
import type { Redis } from 'ioredis';
import {
  AnthropicProvider,
  ConnectionService,
  DemoProvider,
  loadSkills,
  type ModelProvider,
  parseConnectionsKey,
  skillSources,
  TokenStore,
} from './agent/index.ts';
import { loadPolicy, planPolicyResolver, policyCheck, policyExplain } from './approvals/index.ts';
import {
  type ConsoleAccess,
  ConsoleSessions,
  ConsoleStore,
  ConsoleUsers,
  connectionRoutes,
  consoleCommand,
  consoleHelp,
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
  teamsCommand,
  WebSurface,
} from './bot/index.ts';
import {
  type Config,
  type ConnectorConfig,
  loadConfig,
  loadConnectors,
  loadSkillsConfig,
  settingsTable,
} from './config/index.ts';
import { asHandoffError, ErrorCodes, HandoffError, newId, type Prices } from './core/index.ts';
import { createLogger, type Logger, Metrics } from './observability/index.ts';
import { Queues } from './queue/index.ts';
import {
  connectorExplain,
  connectorsList,
  connectorsTest,
  DockerSandboxDriver,
  type EgressNetwork,
  Runner,
  type SandboxDriver,
  sandboxUser,
  skillsCheck,
  skillsList,
  unknownConnectors,
} from './runner/index.ts';
import {
  type ArtifactStore,
  AuditLog,
  auditExport,
  auditPrune,
  auditVerify,
  ChannelSettingsStore,
  closeConnection,
  createQueueConnection,
  createRecordConnection,
  type EmbeddedRedis,
  GrantStore,
  grantsCli,
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
  /** Base URL of the metrics server, when HANDOFF_METRICS_PORT is set (bot and dev). */
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
    const queueConnection: Redis = createQueueConnection(redisUrl, {}, onRedisError);
    cleanups.push(() => closeConnection(queueConnection));
    await waitForReady(records).catch((err) => {
      throw new HandoffError(
        ErrorCodes.config,
        `cannot reach Redis at ${redactUrl(redisUrl!)}: ${(err as Error).message}`,
      );
    });
    // Read through INFO where CONFIG is disabled (managed services); unconfirmed settings are warnings.
    for (const problem of redisHealthProblems(await redisHealth(records)))
      logger[problem.level](problem.details, problem.message);

    const retentionMs = config.retentionDays * 86_400_000;
    const state = new StateStore(records, { retentionMs });
    const audit = new AuditLog(records);
    const queuePrefix = options.queuePrefix ? { prefix: options.queuePrefix } : {};
    const queues = new Queues({ connection: records, retentionMs, ...queuePrefix });
    cleanups.push(() => queues.close());
    const metrics = new Metrics({ defaultMetrics: mode !== 'dev' });
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
      const skills = loadSkills(skillSources({ dataDir, paths: options.skillPaths ?? [] }));
      for (const problem of skills.problems) logger.warn({ problem }, 'a skill could not be loaded');
      for (const line of skills.shadowed) logger.warn({ shadowed: line }, 'two skills have the same name');
      logger.info({ skills: skills.skills.map((s) => s.name) }, 'skills loaded');
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
      // The runner's records wait out a Redis outage (commands queue while it reconnects)
      // instead of failing a run; a runner that lost its job meanwhile is fenced off by
      // the checkpoint's owner check. The bot's stay fail-fast: a person is told at once.
      const runnerRecords = createQueueConnection(redisUrl, {}, onRedisError);
      cleanups.push(() => closeConnection(runnerRecords));
      const runnerQueues = new Queues({ connection: runnerRecords, retentionMs, ...queuePrefix });
      cleanups.push(() => runnerQueues.close());
      const runner = new Runner(
        {
          state: new StateStore(runnerRecords, { retentionMs }),
          channelSettings: new ChannelSettingsStore(runnerRecords, { retentionMs }),
          queues: runnerQueues,
          audit: new AuditLog(runnerRecords),
          store,
          driver,
          provider,
          logger,
          workspacesDir: join(dataDir, 'workspaces'),
          runnerId: config.runnerId ?? `${hostname()}-${process.pid}-${newId('r').slice(2, 8)}`,
          pausedSandboxTtlMs: config.pausedSandboxTtlMs,
          maxTokensPerCall: config.maxTokensPerCall,
          maxArtifactBytesPerRun: config.maxArtifactBytesPerRun,
          limits: {
            memoryMb: config.sandboxMemoryMb,
            cpus: config.sandboxCpus,
            pids: config.sandboxPids,
            tmpfsMb: config.sandboxTmpfsMb,
            outputMb: config.sandboxOutputMb,
          },
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
    }

    if (mode === 'dev' || mode === 'bot') {
      const consoleStore = new ConsoleStore(records, { retentionMs });
      const slack = config.slackBotToken
        ? startSlack(config, { state, store, audit, queues, policy, redis: records, logger })
        : undefined;
      if (slack) cleanups.push(() => slack.close());
      const teams = config.teamsAppId
        ? startTeams(config, { store, audit, redis: records, logger, retentionMs })
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
        const metricsServer = await listenOn(
          createMetricsApp(metrics, config.metricsToken ? { bearerToken: config.metricsToken } : 'open'),
          config.metricsPort,
          config.host,
          'HANDOFF_METRICS_PORT',
        );
        cleanups.push(() => closeServer(metricsServer));
        running.metricsUrl = `http://${urlHost(config.host)}:${serverPort(metricsServer, config.metricsPort)}`;
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
  deps: { store: ArtifactStore; audit: AuditLog; redis: Redis; logger: Logger; retentionMs: number },
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
  });
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
      threadContextMessages: config.threadContextMessages,
    },
    nativeProgress: config.slackNativeProgress,
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

const help = `handoff — hand work to an AI coworker from chat

Usage: handoff <command>

Commands:
  dev       everything in one process: bot + runner + web console, its own redis-server
            (unless REDIS_URL is set), the Docker sandbox, the demo model without ANTHROPIC_API_KEY
  bot       the chat gateway: web console (with HANDOFF_CONSOLE_SIGNIN or HANDOFF_OIDC_ISSUER), downloads,
            /healthz, /metrics (with HANDOFF_METRICS_PORT or HANDOFF_METRICS_TOKEN)
  runner    the workers: planning and runs in Docker sandboxes
  doctor    checks Redis, Docker, the sandbox image, the model, Teams and the port, with the fix for each
  config    prints every setting with its env variable and default
  policy check FILE                              validates a policy file (exit 1 with every problem)
  policy explain --channel C [--action A]        which rule applies to a channel, and why (A may be connector:NAME/TOOL)
  connectors list [--channel C] | test NAME      configured connectors, their channels, tools and levels; a live test
  skills list [--channel C] | check DIR          installed Agent Skills, where from, allowed in a channel; validate a skill folder
  audit verify                                   checks the audit chain (REDIS_URL); exit 1 names the first bad record
  audit export [--since T] [--to DIR|s3]         writes JSONL segments and a digest
  audit prune [--older-than-days N]              removes exported records older than N days (HANDOFF_AUDIT_RETENTION_DAYS)
  grants list [--channel C] | revoke ID [--by NAME]   standing grants (REDIS_URL); revoking is audited
  teams package --app-id ID --host HOST [--out FILE]   writes the Teams app package (manifest and icons)
  console add-user NAME [--id ID]                adds a console user and prints their sign-in link, once (REDIS_URL)
  console list-users | remove-user NAME|ID       lists or removes console users (see handoff console --help)

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
  if (command === 'policy') return await policyCommand(argv.slice(1));
  if (command === 'teams') return teamsCommand(argv.slice(1));
  if (command === 'console' && (argv.length === 1 || argv.includes('--help') || argv.includes('-h'))) {
    console.log(consoleHelp);
    return argv.length === 1 ? 2 : 0;
  }
  let config: Config;
  let connectors: ConnectorConfig[];
  let skillPaths: string[];
  try {
    config = loadConfig();
    connectors = loadConnectors();
    skillPaths = loadSkillsConfig().paths;
  } catch (err) {
    console.error(`handoff: ${(err as Error).message}`);
    return 2;
  }
  if (command === 'connectors') return connectorsCommand(argv.slice(1), config, connectors);
  if (command === 'skills') return skillsCommand(argv.slice(1), config, skillPaths);
  if (command === 'audit') return auditCommand(argv.slice(1), config);
  if (command === 'grants') return grantsCommand(argv.slice(1), config);
  if (command === 'console')
    return consoleCommand(argv.slice(1), {
      redisUrl: config.redisUrl,
      publicUrl: config.publicUrl ?? `http://${urlHost(config.host)}:${config.port}`,
    });
  if (command === 'doctor') {
    const { doctor } = await import('./doctor.ts');
    return doctor(config, connectors, skillPaths);
  }
  if (command !== 'dev' && command !== 'bot' && command !== 'runner') {
    console.error(`handoff: unknown command ${JSON.stringify(command)}\n\n${help}`);
    return 2;
  }
  const logger = createLogger(config.logLevel, 'handoff', { scrubText: config.logRedaction });
  let running: RunningHandoff;
  try {
    running = await startHandoff({ config, mode: command, logger, connectors, skillPaths });
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
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        // A second Ctrl-C means now.
        logger.warn({ signal }, 'stopping at once');
        process.exit(130);
      }
      stopping = true;
      logger.info({ signal, timeoutMs: config.shutdownTimeoutMs }, 'shutting down');
      // Bounded: whatever has not stopped by then is cut off (runs resume from their checkpoints).
      setTimeout(() => {
        logger.error({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown did not finish in time; exiting');
        process.exit(1);
      }, config.shutdownTimeoutMs).unref();
      void running.close().then(resolveStop);
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
    if (process.env.HANDOFF_EXIT_WITH_PARENT === '1') {
      // Started by `npm start`: if whatever started it is killed outright, stop too rather than
      // hold the port and the data dir for nobody.
      const parent = process.ppid;
      setInterval(() => {
        if (process.ppid !== parent) stop('parent exited');
      }, 1000).unref();
    }
  });
  // Everything is closed; a handle some library left open must not keep the process alive.
  setTimeout(() => process.exit(0), 500).unref();
  return 0;
}

async function policyCommand(args: string[]): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { channel: { type: 'string' }, action: { type: 'string' }, policy: { type: 'string' } },
    });
    if (positionals[0] === 'check' && positionals[1]) return policyCheck(positionals[1]);
    if (positionals[0] === 'explain' && values.channel) {
      const policy = loadPolicy(values.policy ?? process.env.HANDOFF_POLICY);
      if (values.action?.startsWith('connector:')) {
        console.log(await connectorExplain(loadConnectors(), policy, values.channel, values.action));
        return 0;
      }
      console.log(
        policyExplain(policy, { channel: values.channel, ...(values.action ? { action: values.action } : {}) }),
      );
      return 0;
    }
  } catch (err) {
    console.error(`handoff: ${(err as Error).message}`);
    return 1;
  }
  console.error(
    'usage: handoff policy check FILE | handoff policy explain --channel C [--action A|connector:NAME/TOOL] [--policy FILE]',
  );
  return 2;
}

const skillsHelp = `usage: handoff skills list [--channel C]   installed skills (built-in, data dir, handoff.yaml), and whether a channel may use each
       handoff skills check DIR            validates one skill folder (exit 1 naming the file and the problem)`;

function skillsCommand(args: string[], config: Config, skillPaths: string[]): number {
  try {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { channel: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
    if (values.help) {
      console.log(skillsHelp);
      return 0;
    }
    if (positionals[0] === 'check' && positionals.length === 2) return skillsCheck(positionals[1]!);
    if (positionals[0] === 'list' && positionals.length === 1) {
      const catalog = loadSkills(skillSources({ dataDir: resolve(config.dataDir), paths: skillPaths }));
      return skillsList(catalog, loadPolicy(config.policyFile), values.channel ? { channel: values.channel } : {});
    }
  } catch (err) {
    console.error(`handoff: ${(err as Error).message}`);
    return 1;
  }
  console.error(skillsHelp);
  return 2;
}

const connectorsHelp = `usage: handoff connectors list [--channel C]   what is configured, which channels may use it, its tools and levels
       handoff connectors test NAME            connects, lists each tool with its level, reports latency`;

async function connectorsCommand(args: string[], config: Config, connectors: ConnectorConfig[]): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { channel: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
    if (values.help) {
      console.log(connectorsHelp);
      return 0;
    }
    const policy = loadPolicy(config.policyFile);
    if (positionals[0] === 'list' && positionals.length === 1)
      return await connectorsList(connectors, policy, values.channel ? { channel: values.channel } : {});
    if (positionals[0] === 'test' && positionals.length === 2)
      return await connectorsTest(connectors, policy, positionals[1]!);
  } catch (err) {
    console.error(`handoff: ${(err as Error).message}`);
    return 1;
  }
  console.error(connectorsHelp);
  return 2;
}

/** `handoff grants list [--channel C] | revoke ID [--by NAME]` against REDIS_URL. */
async function grantsCommand(args: string[], config: Config): Promise<number> {
  let parsed: { values: { channel?: string | undefined; by?: string | undefined }; positionals: string[] };
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: { channel: { type: 'string' }, by: { type: 'string' } },
    });
  } catch (err) {
    console.error(`handoff: ${(err as Error).message}`);
    return 2;
  }
  if (!config.redisUrl) {
    console.error('handoff: set REDIS_URL to the Redis that holds the grants');
    return 2;
  }
  const { values, positionals } = parsed;
  return grantsCli(
    config.redisUrl,
    {
      command: positionals[0],
      ...(positionals[1] ? { id: positionals[1] } : {}),
      ...(values.channel !== undefined ? { channel: values.channel } : {}),
      ...(values.by !== undefined ? { by: values.by } : {}),
    },
    config.retentionDays * 86_400_000,
  );
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
