import { parseArgs } from 'node:util';
import { asHandoffError } from '../../../core/index.ts';
import { closeConnection, createRecordConnection, waitForReady } from '../../../storage/index.ts';
import { ConsoleUsers } from './console-users.ts';

/** Where the CLI prints; console by default, a recorder in tests. */
export interface ConsoleCliOutput {
  log(line: string): void;
  error(line: string): void;
}

export const consoleHelp = `handoff console — people who sign in to the web console with a personal link
(HANDOFF_CONSOLE_SIGNIN=tokens)

Usage:
  handoff console add-user NAME [--id ID]   adds NAME and prints their sign-in link, once
                                            (ID, for web:user:ID in policy files, defaults to NAME in lower case)
  handoff console list-users                lists the users: id, name, when added
  handoff console remove-user NAME|ID       removes a user: their link and sessions stop working at once

Needs REDIS_URL (the Redis the bots use). Links start with HANDOFF_PUBLIC_URL.`;

/** `handoff console …`: 0 on success, 1 when refused (an id taken, no such user), 2 for a usage or Redis problem. */
export async function consoleCommand(
  args: string[],
  settings: { redisUrl: string | undefined; publicUrl: string },
  out: ConsoleCliOutput = console,
): Promise<number> {
  let parsed: { values: { id?: string | undefined; help?: boolean | undefined }; positionals: string[] };
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: { id: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    out.error(`handoff: ${(err as Error).message}\n\n${consoleHelp}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [sub, ...rest] = positionals;
  if (values.help || sub === 'help' || !sub) {
    out.log(consoleHelp);
    return values.help || sub === 'help' ? 0 : 2;
  }
  const usage =
    (sub === 'add-user' || sub === 'remove-user') && rest.length === 1
      ? undefined
      : sub === 'list-users' && rest.length === 0
        ? undefined
        : `usage: handoff console add-user NAME [--id ID] | list-users | remove-user NAME|ID`;
  if (usage) {
    out.error(usage);
    return 2;
  }
  if (!settings.redisUrl) {
    out.error('handoff: set REDIS_URL to the Redis the bots use');
    return 2;
  }
  const redis = createRecordConnection(settings.redisUrl);
  try {
    try {
      await waitForReady(redis);
    } catch (err) {
      out.error(`handoff: cannot reach Redis: ${(err as Error).message}`);
      return 2;
    }
    const users = new ConsoleUsers(redis);
    if (sub === 'list-users') {
      const list = await users.list();
      if (list.length === 0) out.log('no console users yet: add one with `handoff console add-user NAME`');
      for (const u of list) out.log(`${u.id}\t${u.name}\tadded ${u.createdAt}`);
      return 0;
    }
    if (sub === 'remove-user') {
      const removed = await users.remove(rest[0]!);
      if (!removed) {
        out.error(`handoff: no console user ${JSON.stringify(rest[0])} (see handoff console list-users)`);
        return 1;
      }
      out.log(`removed ${removed.name} (web:user:${removed.id}); their link and sessions no longer work`);
      return 0;
    }
    const { user, token } = await users.add(rest[0]!, values.id);
    const link = new URL('/', settings.publicUrl);
    link.searchParams.set('token', token);
    out.log(`added ${user.name} as web:user:${user.id}`);
    out.log(`sign-in link (shown only now; anyone holding it signs in as ${user.name}):`);
    out.log(link.href);
    return 0;
  } catch (err) {
    out.error(`handoff: ${asHandoffError(err).message}`);
    return 1;
  } finally {
    await closeConnection(redis);
  }
}
