import { AnthropicVertex } from '@anthropic-ai/vertex-sdk';
// google-auth-library comes with @anthropic-ai/vertex-sdk (its dependency); used here only to
// build the default Application Default Credentials client.
import { GoogleAuth } from 'google-auth-library';
import { MessagesProvider } from './messages-provider.ts';

/** A google-auth-library AuthClient, typed through the SDK so this file needs no import of it. */
export type VertexAuthClient = NonNullable<NonNullable<ConstructorParameters<typeof AnthropicVertex>[0]>['authClient']>;

export interface VertexProviderOptions {
  /** Vertex model id: `claude-sonnet-4-5@20250929`, `claude-sonnet-4-6`. */
  model: string;
  /** Google Cloud project that is billed and whose quota is used. */
  projectId: string;
  /** Vertex location: `us-east5`, `europe-west1`, or `global` (any region Google picks). */
  region: string;
  /** Vertex endpoint including `/v1` (Private Service Connect, a test fake). Default: the region's public one. */
  baseURL?: string;
  /** How many times the SDK retries 408/409/429/5xx and connection errors, with backoff. Default 3. */
  maxRetries?: number;
  /** Per-attempt request timeout in milliseconds. Default: the SDK's (10 minutes). */
  timeoutMs?: number;
  /** Google credentials. Default: Application Default Credentials with the cloud-platform scope. */
  authClient?: VertexAuthClient;
}

/** Why a model id cannot be a Vertex one; undefined when it can. */
export function vertexModelProblem(model: string): string | undefined {
  if (/^([a-z]{2,6}\.)?anthropic\./.test(model) || model.startsWith('arn:')) {
    return `HANDOFF_MODEL=${model} is an Amazon Bedrock model id; Vertex AI names Claude models like claude-sonnet-4-5@20250929 or claude-sonnet-4-6`;
  }
  return undefined;
}

/**
 * Claude on Google Vertex AI (`…/publishers/anthropic/models/{model}:rawPredict`, OAuth
 * bearer token) through `@anthropic-ai/vertex-sdk`.
 */
export class VertexProvider extends MessagesProvider {
  constructor(options: VertexProviderOptions) {
    super({
      name: 'vertex',
      model: options.model,
      region: options.region,
      label: `Vertex AI in ${options.region} (project ${options.projectId})`,
      client: new AnthropicVertex({
        region: options.region,
        projectId: options.projectId,
        maxRetries: options.maxRetries ?? 3,
        ...(options.authClient === undefined
          ? { googleAuth: new QuietGoogleAuth() }
          : { authClient: options.authClient }),
        ...(options.baseURL === undefined ? {} : { baseURL: options.baseURL }),
        ...(options.timeoutMs === undefined ? {} : { timeout: options.timeoutMs }),
      }),
    });
  }
}

/**
 * Application Default Credentials with the cloud-platform scope. The SDK starts resolving
 * them when the client is built and awaits the result only at the first request; without
 * a handler, missing credentials would be an unhandled rejection that ends the process
 * before anyone asked for a model. The first request still fails with the reason.
 */
class QuietGoogleAuth extends GoogleAuth {
  constructor() {
    super({ scopes: 'https://www.googleapis.com/auth/cloud-platform' });
  }

  override getClient(): ReturnType<GoogleAuth['getClient']> {
    const pending = super.getClient();
    pending.catch(() => undefined);
    return pending;
  }
}
