import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';

export interface OpenIdAccount {
  name?: string;
  preferred_username?: string;
  email?: string;
}

export interface TestOpenIdProvider {
  /** Issuer URL (http on 127.0.0.1). */
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Registers the client once the redirect URI is known (the bot's port comes after the issuer's). */
  register(redirectUri: string): void;
  close(): Promise<void>;
}

/**
 * A real OpenID Provider (`oidc-provider`, certified) on a loopback port, with its
 * development login and consent pages: any login name signs in as that subject, whose
 * claims come from `accounts`. It listens at once; the client is registered with
 * `register` when the bot's redirect URI is known.
 */
export async function startOpenIdProvider(accounts: Record<string, OpenIdAccount>): Promise<TestOpenIdProvider> {
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const server: Server = createServer((req, res) => {
    if (!handler) {
      res.statusCode = 503;
      res.end('provider not configured yet');
      return;
    }
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const clientId = 'handoff-console';
  const clientSecret = 'test-client-secret-not-a-real-one';
  return {
    issuer,
    clientId,
    clientSecret,
    register(redirectUri) {
      const provider = new Provider(issuer, {
        clients: [
          {
            client_id: clientId,
            client_secret: clientSecret,
            redirect_uris: [redirectUri],
            grant_types: ['authorization_code'],
            response_types: ['code'],
            token_endpoint_auth_method: 'client_secret_basic',
          },
        ],
        findAccount: async (_ctx: unknown, sub: string) => ({
          accountId: sub,
          claims: async () => ({ sub, ...accounts[sub] }),
        }),
        claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email'] },
        cookies: { keys: ['test-provider-cookie-key-0123456789'] },
        ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 600, IdToken: 600 },
      });
      handler = provider.callback();
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
