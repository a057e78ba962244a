import { asHandoffError } from '../../../core/index.ts';
import { ClientCredentials, fetchJson } from './teams-auth.ts';
import { botFrameworkScope } from './teams-connector.ts';
import { graphScope } from './teams-files.ts';

/** One line of `handoff doctor`. */
export interface TeamsCheck {
  name: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

/**
 * What `handoff doctor` checks for Teams: the signing keys of incoming requests can be
 * found, and the bot gets its own tokens (and Graph's, when enabled). Never prints a secret.
 */
export async function teamsChecks(settings: {
  appId: string;
  appPassword?: string;
  tenantId?: string;
  openIdMetadataUrl: string;
  tokenEndpoint?: string;
  graphEnabled: boolean;
}): Promise<TeamsCheck[]> {
  const checks: TeamsCheck[] = [];
  try {
    const metadata = (await fetchJson(settings.openIdMetadataUrl)) as { issuer?: unknown; jwks_uri?: unknown };
    if (typeof metadata.issuer !== 'string' || typeof metadata.jwks_uri !== 'string')
      throw new Error('it names no issuer or jwks_uri');
    const keys = (await fetchJson(metadata.jwks_uri)) as { keys?: unknown };
    const count = Array.isArray(keys.keys) ? keys.keys.length : 0;
    if (count === 0) throw new Error('its key set is empty');
    checks.push({
      name: 'Teams signing keys',
      ok: true,
      detail: `${count} key(s) from ${new URL(metadata.jwks_uri).host}, issuer ${metadata.issuer}`,
    });
  } catch (err) {
    checks.push({
      name: 'Teams signing keys',
      ok: false,
      detail: `cannot read ${settings.openIdMetadataUrl}: ${asHandoffError(err).message}`,
      fix: 'check TEAMS_OPENID_METADATA_URL and that the bot may reach it over HTTPS',
    });
  }
  if (!settings.appPassword) {
    checks.push({
      name: 'Teams token',
      ok: false,
      detail: 'TEAMS_APP_PASSWORD is not set',
      fix: 'set TEAMS_APP_PASSWORD',
    });
    return checks;
  }
  const credentials = new ClientCredentials({
    tokenEndpoint:
      settings.tokenEndpoint ??
      `https://login.microsoftonline.com/${settings.tenantId ?? 'botframework.com'}/oauth2/v2.0/token`,
    clientId: settings.appId,
    clientSecret: settings.appPassword,
  });
  const scopes: Array<[string, string]> = [['Teams token', botFrameworkScope]];
  if (settings.graphEnabled) scopes.push(['Microsoft Graph token', graphScope]);
  for (const [name, scope] of scopes) {
    try {
      await credentials.token(scope);
      checks.push({ name, ok: true, detail: `the bot gets its tokens for ${scope}` });
    } catch (err) {
      checks.push({
        name,
        ok: false,
        // The advice in the error's own words is the fix line below.
        detail: asHandoffError(err).message.replace(/: check .*$/, ''),
        fix: 'check TEAMS_APP_ID, TEAMS_APP_PASSWORD, TEAMS_TENANT_ID and TEAMS_TOKEN_ENDPOINT',
      });
    }
  }
  return checks;
}
