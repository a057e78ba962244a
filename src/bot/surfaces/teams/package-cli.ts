import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { asHandoffError } from '../../../core/index.ts';
import {
  type TeamsPackageInput,
  TeamsPackageInputSchema,
  teamsAppPackage,
  teamsManifestVersion,
} from './app-package.ts';

/** Where the CLI prints; console by default, a recorder in tests. */
export interface TeamsCliOutput {
  log(line: string): void;
  error(line: string): void;
}

export const teamsHelp = `handoff teams — the Microsoft Teams app package for the bot

Usage:
  handoff teams package --app-id GUID --host HOST [--out FILE] [--name NAME] [--force]
                        [--website URL] [--privacy URL] [--terms URL]

Writes a zip to upload to Teams: manifest.json (app manifest ${teamsManifestVersion}), color.png and outline.png.

  --app-id GUID    Microsoft App ID of the Azure Bot (its Entra app registration), as in TEAMS_APP_ID
  --host HOST      the bot's public hostname, e.g. handoff.example.com (no https://, port or path);
                   Teams sends messages to https://HOST/api/messages
  --out FILE       where to write the zip (default ./handoff-teams.zip)
  --name NAME      the app's name in Teams, at most 30 characters (default Handoff)
  --website URL    developer website shown in Teams (default https://HOST/)
  --privacy URL    privacy statement (default https://HOST/privacy)
  --terms URL      terms of use (default https://HOST/terms)
                   Handoff serves no pages at these defaults: point them at your organisation's own.
  --force          overwrite FILE if it exists
  -h, --help       show this help`;

const usageLine = 'usage: handoff teams package --app-id GUID --host HOST [--out FILE] [--name NAME] [--force]';

/** The command-line flag of each input field, to name it in messages. */
const flagOf: Record<string, string> = {
  appId: '--app-id',
  host: '--host',
  name: '--name',
  websiteUrl: '--website',
  privacyUrl: '--privacy',
  termsOfUseUrl: '--terms',
  version: 'the version in package.json',
};

const options = {
  'app-id': { type: 'string' },
  host: { type: 'string' },
  out: { type: 'string' },
  name: { type: 'string' },
  website: { type: 'string' },
  privacy: { type: 'string' },
  terms: { type: 'string' },
  force: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/**
 * `handoff teams …` (argv without `teams`): 0 when the package was written, 2 for a usage
 * problem (named on stderr), 1 when the file could not be written.
 */
export async function teamsCommand(argv: string[], out: TeamsCliOutput = console): Promise<number> {
  let parsed: ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: true; options: typeof options }>>;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options });
  } catch (err) {
    out.error(`handoff: ${(err as Error).message}\n${usageLine}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [sub, ...rest] = positionals;
  if (values.help || sub === 'help') {
    out.log(teamsHelp);
    return 0;
  }
  if (sub !== 'package') {
    out.error(
      `handoff: ${sub === undefined ? 'missing subcommand' : `unknown subcommand ${JSON.stringify(sub)}`}\n\n${teamsHelp}`,
    );
    return 2;
  }
  if (rest.length > 0) {
    out.error(`handoff: unexpected argument ${JSON.stringify(rest[0])}\n${usageLine}`);
    return 2;
  }
  const missing = (['app-id', 'host'] as const).filter((k) => values[k] === undefined);
  if (missing.length > 0) {
    out.error(`handoff: ${missing.map((k) => `--${k}`).join(' and ')} required\n${usageLine}`);
    return 2;
  }

  let version: string;
  try {
    version = handoffVersion();
  } catch (err) {
    out.error(`handoff: ${asHandoffError(err).message}`);
    return 1;
  }
  const input: TeamsPackageInput = {
    appId: values['app-id']!,
    host: values.host!,
    version,
    ...(values.name !== undefined ? { name: values.name } : {}),
    ...(values.website !== undefined ? { websiteUrl: values.website } : {}),
    ...(values.privacy !== undefined ? { privacyUrl: values.privacy } : {}),
    ...(values.terms !== undefined ? { termsOfUseUrl: values.terms } : {}),
  };
  const checked = TeamsPackageInputSchema.safeParse(input);
  if (!checked.success) {
    for (const issue of checked.error.issues) {
      const field = String(issue.path[0] ?? '');
      out.error(`handoff: ${flagOf[field] ?? field} ${issue.message}`);
    }
    return 2;
  }
  const { appId, host } = checked.data;

  const file = resolve(values.out ?? 'handoff-teams.zip');
  let zip: Uint8Array;
  try {
    zip = teamsAppPackage(input);
  } catch (err) {
    out.error(`handoff: ${asHandoffError(err).message}`);
    return 2;
  }
  try {
    // 'wx' refuses an existing file in the same call that creates it: no window between check and write.
    writeFileSync(file, zip, { flag: values.force ? 'w' : 'wx' });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      out.error(`handoff: ${file} already exists; pass --force to overwrite it, or choose another --out`);
      return 2;
    }
    out.error(`handoff: cannot write ${file}: ${(err as Error).message}`);
    return 1;
  }

  out.log(`wrote ${file} (${zip.length} bytes): the Teams app package for bot ${appId} at ${host}`);
  out.log(`  manifest.json  app manifest ${teamsManifestVersion}, version ${version}, valid domain ${host}`);
  out.log('  color.png      192×192 colour icon');
  out.log('  outline.png    32×32 white outline icon');
  out.log('');
  out.log('Next steps:');
  out.log('  1. Upload the package: Teams admin centre → Teams apps → Manage apps → Upload new app (for everyone),');
  out.log('     or in Teams → Apps → Manage your apps → Upload an app (a custom app, or to your org’s app catalog).');
  out.log(
    `  2. In the Azure Bot resource: Settings → Configuration → Messaging endpoint: https://${host}/api/messages`,
  );
  out.log('     (and under Channels, add Microsoft Teams).');
  out.log('  3. Give Handoff the bot’s credentials, then restart it:');
  out.log(`       TEAMS_APP_ID=${appId}`);
  out.log('       TEAMS_APP_PASSWORD=<a client secret of that app registration>');
  out.log('       TEAMS_TENANT_ID=<the directory (tenant) id of a single-tenant bot>');
  return 0;
}

const PackageJsonSchema = z.object({ name: z.literal('handoff'), version: z.string() });

/** Handoff's own version, from the package.json above this file (in a checkout and in dist/). */
function handoffVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = PackageJsonSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
      if (pkg.success) return pkg.data.version;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find Handoff’s package.json to read its version');
    dir = up;
  }
}
