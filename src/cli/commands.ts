import { resolve } from 'node:path';
import {
  type Config,
  type ConnectorConfig,
  loadConfig,
  loadConnectors,
  loadSkillsConfig,
  settingsTable,
} from '../config/index.ts';
import type { ArtifactStore } from '../storage/index.ts';
import type { CommandArgs, CommandSpec } from './command-spec.ts';
import { ExitCode } from './exit-codes.ts';
import { serve } from './serve.ts';

// What a command runs is imported when it runs, not here: `--help`, `--version` and every Tab of
// shell completion then load yargs and the settings schema only, not the whole application
// (bin/handoff.js imports this folder, not main.ts). The modules are the ones
// scripts/check-imports.js allows this folder.
const approvals = () => import('../approvals/index.ts');
const agent = () => import('../agent/index.ts');
const bot = () => import('../bot/index.ts');
const runner = () => import('../runner/index.ts');
const storage = () => import('../storage/index.ts');

/** What the commands that need settings read: handoff.yaml and the environment, once. */
interface Settings {
  config: Config;
  connectors: ConnectorConfig[];
  skillPaths: string[];
}

/** Loads the settings, or says what is wrong with them (exit 2) without running `fn`. */
async function withSettings(fn: (s: Settings) => number | Promise<number>): Promise<number> {
  let settings: Settings;
  try {
    settings = { config: loadConfig(), connectors: loadConnectors(), skillPaths: loadSkillsConfig().paths };
  } catch (err) {
    console.error(`handoff: ${(err as Error).message}`);
    return ExitCode.usage;
  }
  return fn(settings);
}

/** Runs `fn`; an error it throws is printed as `handoff: message` and exits 1. */
async function failing(fn: () => number | Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (err) {
    console.error(`handoff: ${(err as Error).message}`);
    return ExitCode.failed;
  }
}

function str(args: CommandArgs, key: string): string | undefined {
  const v = args[key];
  return v === undefined ? undefined : String(v);
}

/** An address as it appears in a URL (IPv6 in brackets), lower case; as main.ts builds its own URL. */
function urlHost(host: string): string {
  return (host.includes(':') && !host.startsWith('[') ? `[${host}]` : host).toLowerCase();
}

async function s3StoreFrom(config: Config): Promise<ArtifactStore> {
  const { S3ArtifactStore } = await storage();
  return new S3ArtifactStore({
    bucket: config.s3Bucket!,
    ...(config.s3Prefix ? { prefix: config.s3Prefix } : {}),
    ...(config.s3Region ? { region: config.s3Region } : {}),
    ...(config.s3Endpoint ? { endpoint: config.s3Endpoint } : {}),
  });
}

const channelOption = (what: string) => ({
  type: 'string' as const,
  requiresArg: true,
  describe: what,
});

function serveCommand(mode: 'dev' | 'bot' | 'runner', describe: string): CommandSpec {
  return { command: mode, describe, run: () => withSettings((s) => serve(mode, s)) };
}

const policy: CommandSpec = {
  command: 'policy',
  describe: 'validates a policy file; explains which rule applies to a channel, and why',
  subcommands: [
    {
      command: 'check <file>',
      describe: 'validates a policy file: exit 1 with every problem as file: key.path: reason',
      positionals: { file: { type: 'string', describe: 'the policy file (YAML or JSON)' } },
      run: (args) => failing(async () => (await approvals()).policyCheck(str(args, 'file')!)),
    },
    {
      command: 'explain',
      describe: 'which rule applies to a channel, the trust level of an action and where it was set, who approves',
      options: {
        channel: { ...channelOption('the channel, as SURFACE:CHANNEL (slack:C0123, web:general)'), demandOption: true },
        action: {
          type: 'string',
          requiresArg: true,
          describe: 'an action kind (delete_file, egress…) or connector:NAME/TOOL; without it, every action kind',
        },
        policy: {
          type: 'string',
          requiresArg: true,
          describe: 'the policy file (default HANDOFF_POLICY, else the built-in policy)',
        },
      },
      examples: [['$0 policy explain --channel web:general --action delete_file', 'deleting a file there']],
      run: (args) =>
        failing(async () => {
          const { loadPolicy, policyExplain } = await approvals();
          const channel = str(args, 'channel')!;
          const action = str(args, 'action');
          const loaded = loadPolicy(str(args, 'policy') ?? process.env.HANDOFF_POLICY);
          if (action?.startsWith('connector:')) {
            const { connectorExplain } = await runner();
            console.log(await connectorExplain(loadConnectors(), loaded, channel, action));
            return ExitCode.ok;
          }
          console.log(policyExplain(loaded, { channel, ...(action ? { action } : {}) }));
          return ExitCode.ok;
        }),
    },
  ],
};

const connectors: CommandSpec = {
  command: 'connectors',
  describe: 'the configured connectors (MCP servers): their channels, tools and levels; a live test',
  subcommands: [
    {
      command: 'list',
      describe: 'what is configured, which channels may use it, its tools and their levels',
      options: { channel: channelOption('only what this channel (SURFACE:CHANNEL) may use') },
      run: (args) =>
        withSettings(({ config, connectors }) =>
          failing(async () => {
            const [{ loadPolicy }, { connectorsList }] = await Promise.all([approvals(), runner()]);
            const channel = str(args, 'channel');
            return connectorsList(connectors, loadPolicy(config.policyFile), channel ? { channel } : {});
          }),
        ),
    },
    {
      command: 'test <name>',
      describe: 'connects, lists each tool with its level, reports the latency (exit 1 when it cannot)',
      positionals: { name: { type: 'string', describe: 'the connector, as named in handoff.yaml' } },
      run: (args) =>
        withSettings(({ config, connectors }) =>
          failing(async () => {
            const [{ loadPolicy }, { connectorsTest }] = await Promise.all([approvals(), runner()]);
            return connectorsTest(connectors, loadPolicy(config.policyFile), str(args, 'name')!);
          }),
        ),
    },
  ],
};

const skills: CommandSpec = {
  command: 'skills',
  describe: 'installed Agent Skills: where each comes from, whether a channel may use it; validates a skill folder',
  subcommands: [
    {
      command: 'list',
      describe: 'installed skills (built-in, data dir, handoff.yaml); exit 1 when a skill folder is broken',
      options: { channel: channelOption('also say whether this channel (SURFACE:CHANNEL) may use each') },
      run: (args) =>
        withSettings(({ config, skillPaths }) =>
          failing(async () => {
            const [{ loadSkills, skillSources }, { loadPolicy }, { skillsList }] = await Promise.all([
              agent(),
              approvals(),
              runner(),
            ]);
            const catalog = loadSkills(skillSources({ dataDir: resolve(config.dataDir), paths: skillPaths }));
            const channel = str(args, 'channel');
            return skillsList(catalog, loadPolicy(config.policyFile), channel ? { channel } : {});
          }),
        ),
    },
    {
      command: 'check <dir>',
      describe: 'validates one skill folder (exit 1 naming the file and the problem)',
      positionals: { dir: { type: 'string', describe: 'the folder holding SKILL.md' } },
      run: (args) => withSettings(() => failing(async () => (await runner()).skillsCheck(str(args, 'dir')!))),
    },
  ],
};

/** The audit commands read REDIS_URL; without it they stop with exit 2. */
function withAuditRedis(fn: (redisUrl: string, config: Config) => Promise<number>): Promise<number> {
  return withSettings(({ config }) => {
    if (!config.redisUrl) {
      console.error('handoff: set REDIS_URL to the Redis that holds the audit log');
      return ExitCode.usage;
    }
    return fn(config.redisUrl, config);
  });
}

const audit: CommandSpec = {
  command: 'audit',
  describe: 'the tamper-evident audit log in REDIS_URL: verify, export, prune',
  subcommands: [
    {
      command: 'verify',
      describe: 'checks the hash chain; exit 1 names the first edited, inserted, deleted or reordered record',
      run: () => withAuditRedis(async (url) => (await storage()).auditVerify(url)),
    },
    {
      command: 'export',
      describe: 'writes the records as JSONL segments with a digest.json',
      options: {
        since: {
          type: 'string',
          requiresArg: true,
          describe: 'from this date (2025-01-31), time (2025-01-31T12:00Z) or duration back (30d, 12h)',
        },
        to: {
          type: 'string',
          requiresArg: true,
          describe: 'a directory (default ./audit-export), or s3 for HANDOFF_S3_BUCKET (e.g. with Object Lock)',
        },
      },
      run: (args) =>
        withAuditRedis(async (url, config) => {
          const since = str(args, 'since');
          let to: string | ArtifactStore | undefined = str(args, 'to');
          if (to === 's3') {
            if (!config.s3Bucket) {
              console.error('handoff: --to s3 needs HANDOFF_S3_BUCKET');
              return ExitCode.usage;
            }
            to = await s3StoreFrom(config);
          }
          return (await storage()).auditExport(url, { ...(since ? { since } : {}), ...(to ? { to } : {}) });
        }),
    },
    {
      command: 'prune',
      describe: 'removes exported records older than N days',
      options: {
        'older-than-days': {
          type: 'string',
          requiresArg: true,
          describe: 'N (default HANDOFF_AUDIT_RETENTION_DAYS, 180)',
        },
      },
      run: (args) =>
        withAuditRedis(async (url, config) =>
          (await storage()).auditPrune(url, {
            olderThanDays: Number(str(args, 'older-than-days') ?? config.auditRetentionDays),
          }),
        ),
    },
  ],
};

/** The grant commands read REDIS_URL; without it they stop with exit 2. */
function withGrantsRedis(fn: (redisUrl: string, retentionMs: number) => Promise<number>): Promise<number> {
  return withSettings(({ config }) => {
    if (!config.redisUrl) {
      console.error('handoff: set REDIS_URL to the Redis that holds the grants');
      return ExitCode.usage;
    }
    return fn(config.redisUrl, config.retentionDays * 86_400_000);
  });
}

const grants: CommandSpec = {
  command: 'grants',
  describe: 'standing grants (approvals kept for a run or a channel) in REDIS_URL: list, revoke',
  subcommands: [
    {
      command: 'list',
      describe: 'every live standing grant, one line each',
      options: { channel: channelOption("only this channel's, as SURFACE:CHANNEL (slack:C0123)") },
      run: (args) =>
        withGrantsRedis(async (url, retentionMs) => {
          const { grantsCli } = await storage();
          const channel = str(args, 'channel');
          return grantsCli(url, { command: 'list', ...(channel !== undefined ? { channel } : {}) }, retentionMs);
        }),
    },
    {
      command: 'revoke <id>',
      describe: 'revokes one grant; audited as grant.revoked with your name (exit 1 when unknown or revoked)',
      positionals: { id: { type: 'string', describe: 'the grant id, as grants list shows it' } },
      options: {
        by: { type: 'string', requiresArg: true, describe: 'your name for the audit record (default admin)' },
      },
      run: (args) =>
        withGrantsRedis(async (url, retentionMs) => {
          const { grantsCli } = await storage();
          const by = str(args, 'by');
          return grantsCli(
            url,
            { command: 'revoke', id: str(args, 'id')!, ...(by !== undefined ? { by } : {}) },
            retentionMs,
          );
        }),
    },
  ],
};

const teams: CommandSpec = {
  command: 'teams',
  describe: 'the Microsoft Teams app package for the bot',
  subcommands: [
    {
      command: 'package',
      describe: 'writes the zip to upload to Teams: manifest.json, color.png and outline.png',
      options: {
        'app-id': {
          type: 'string',
          requiresArg: true,
          demandOption: true,
          describe: 'Microsoft App ID of the Azure Bot (its Entra app registration), as in TEAMS_APP_ID',
        },
        host: {
          type: 'string',
          requiresArg: true,
          demandOption: true,
          describe: "the bot's public hostname (no https://, port or path); Teams posts to https://HOST/api/messages",
        },
        out: { type: 'string', requiresArg: true, describe: 'where to write the zip (default ./handoff-teams.zip)' },
        name: {
          type: 'string',
          requiresArg: true,
          describe: "the app's name in Teams, at most 30 characters (Handoff)",
        },
        website: { type: 'string', requiresArg: true, describe: 'developer website shown in Teams (https://HOST/)' },
        privacy: { type: 'string', requiresArg: true, describe: 'privacy statement (https://HOST/privacy)' },
        terms: { type: 'string', requiresArg: true, describe: 'terms of use (https://HOST/terms)' },
        force: { type: 'boolean', describe: 'overwrite the file if it exists' },
      },
      run: async (args) => {
        // teamsCommand parses its own argv (it is also tested that way): hand it what was given.
        const argv = ['package'];
        for (const key of ['app-id', 'host', 'out', 'name', 'website', 'privacy', 'terms']) {
          const v = str(args, key);
          if (v !== undefined) argv.push(`--${key}=${v}`);
        }
        if (args.force === true) argv.push('--force');
        return (await bot()).teamsCommand(argv);
      },
    },
  ],
};

/** `handoff console …` through consoleCommand, which needs REDIS_URL and the public URL. */
function consoleRun(argv: string[]): Promise<number> {
  return withSettings(async ({ config }) =>
    (await bot()).consoleCommand(argv, {
      redisUrl: config.redisUrl,
      publicUrl: config.publicUrl ?? `http://${urlHost(config.host)}:${config.port}`,
    }),
  );
}

const consoleUsers: CommandSpec = {
  command: 'console',
  describe: 'people who sign in to the web console with a personal link (HANDOFF_CONSOLE_SIGNIN=tokens), in REDIS_URL',
  synopsis:
    'handoff console add-user NAME [--id ID] | list-users | remove-user NAME|ID\n\n' +
    'People who sign in to the web console with a personal link (HANDOFF_CONSOLE_SIGNIN=tokens).\n' +
    'Needs REDIS_URL (the Redis the bots use). Links start with HANDOFF_PUBLIC_URL.',
  subcommands: [
    {
      command: 'add-user <name>',
      describe: 'adds NAME and prints their sign-in link, once (exit 1 when the id is taken)',
      positionals: { name: { type: 'string', describe: 'the person, as shown in the console' } },
      options: {
        id: {
          type: 'string',
          requiresArg: true,
          describe: 'the id for web:user:ID in policy files (default NAME in lower case)',
        },
      },
      run: (args) => {
        const id = str(args, 'id');
        // After `--`, a name that starts with a dash is still a name.
        return consoleRun(['add-user', ...(id !== undefined ? [`--id=${id}`] : []), '--', str(args, 'name')!]);
      },
    },
    {
      command: 'list-users',
      describe: 'lists the users: id, name, when added',
      run: () => consoleRun(['list-users']),
    },
    {
      command: 'remove-user <user>',
      describe: 'removes a user: their link and sessions stop working at once (exit 1 when there is none)',
      positionals: { user: { type: 'string', describe: 'NAME or ID' } },
      run: (args) => consoleRun(['remove-user', '--', str(args, 'user')!]),
    },
  ],
};

/**
 * Every command of `handoff` (besides `completion`, which cli.ts adds from yargs). The
 * parser is built from this tree and the CLI tests walk it.
 */
export const commands: readonly CommandSpec[] = [
  serveCommand(
    'dev',
    'everything in one process: bot + runner + web console, its own redis-server (unless REDIS_URL is set), ' +
      'the Docker sandbox, the demo model without ANTHROPIC_API_KEY',
  ),
  serveCommand(
    'bot',
    'the chat gateway: Slack, Teams, the web console (with HANDOFF_CONSOLE_SIGNIN or HANDOFF_OIDC_ISSUER), ' +
      'downloads, /healthz, /readyz, /metrics (with HANDOFF_METRICS_PORT or HANDOFF_METRICS_TOKEN)',
  ),
  serveCommand('runner', 'the workers: planning and runs in Docker sandboxes, scheduled briefs'),
  {
    command: 'doctor',
    describe:
      'checks Redis, Docker, the sandbox image, the model, Teams, connectors, skills and the port, with the fix for each; exit 1 when one fails',
    options: {
      json: {
        type: 'boolean',
        describe: 'print one JSON document {ok, checks: [{name, status: ok|warn|fail, detail, fix?}]} for scripts',
      },
    },
    run: (args) =>
      withSettings(async ({ config, connectors, skillPaths }) => {
        // Loaded when used: doctor.ts sits beside main.ts, outside the modules this folder imports.
        const { doctor } = await import('../doctor.ts');
        return doctor(config, connectors, skillPaths, { json: args.json === true });
      }),
  },
  {
    command: 'config',
    describe: 'prints every setting with its env variable, handoff.yaml key and default',
    run: () => {
      console.log(settingsTable());
      return ExitCode.ok;
    },
  },
  policy,
  connectors,
  skills,
  audit,
  grants,
  teams,
  consoleUsers,
];
