/**
 * A local fake of Vertex AI's endpoint for Anthropic models
 * (`POST /v1/projects/{project}/locations/{location}/publishers/anthropic/models/{model}:rawPredict`,
 * non-streaming) that speaks its wire format, so the real `@anthropic-ai/vertex-sdk` can
 * talk to it through `baseURL` (`<url>/v1`).
 *
 * Like Google it checks the OAuth bearer token (401 UNAUTHENTICATED), the project (403
 * PERMISSION_DENIED), then the model in that location (404 NOT_FOUND, "Publisher Model …
 * not found"), in Google's `{error: {code, message, status}}` shape; the body is then
 * checked like the Messages API (no `model`, `anthropic_version` required) and refused in
 * Anthropic's error shape, as Vertex passes those through. `:streamRawPredict` is not served.
 */
import type { ServerResponse } from 'node:http';
import { messageBody, validateRequest } from './anthropic-server.ts';
import { CloudMessagesFake, type CloudRequest, headerValue, sendJson } from './cloud-messages-fake.ts';

export interface FakeVertexOptions {
  /** The only project the caller may use. */
  projectId: string;
  /** The models each location offers: `{ 'europe-west1': ['claude-sonnet-4-5@20250929'] }`. */
  locations: Record<string, string[]>;
  /** The only access token accepted. */
  accessToken: string;
}

export class FakeVertexServer extends CloudMessagesFake {
  readonly #options: FakeVertexOptions;

  constructor(options: FakeVertexOptions) {
    super();
    this.#options = options;
  }

  /** For the SDK's `baseURL` (ANTHROPIC_VERTEX_BASE_URL), with `/v1`. */
  get url(): string {
    return `${this.origin}/v1`;
  }

  protected async serve(request: CloudRequest, res: ServerResponse): Promise<void> {
    const google = (code: number, status: string, message: string) => {
      request.status = code;
      request.errorType = status;
      sendJson(res, code, { error: { code, message, status } });
    };
    const anthropic = (type: string, message: string) => {
      request.status = 400;
      request.errorType = type;
      sendJson(res, 400, { type: 'error', error: { type, message } });
    };

    const route =
      /^\/v1\/projects\/([^/]+)\/locations\/([^/]+)\/publishers\/anthropic\/models\/([^/:]+):(rawPredict|streamRawPredict)$/.exec(
        request.path,
      );
    if (request.method !== 'POST' || route === null) {
      return google(404, 'NOT_FOUND', `The requested URL ${request.path} was not found on this server.`);
    }
    const [, project, location, encodedModel, method] = route as unknown as [string, string, string, string, string];
    const modelId = decodeURIComponent(encodedModel);
    request.modelId = modelId;
    const resource = `projects/${project}/locations/${location}/publishers/anthropic/models/${modelId}`;

    const authorization = headerValue(request.headers.authorization);
    if (authorization !== `Bearer ${this.#options.accessToken}`) {
      return google(
        401,
        'UNAUTHENTICATED',
        'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.',
      );
    }
    if (project !== this.#options.projectId) {
      return google(
        403,
        'PERMISSION_DENIED',
        `Permission 'aiplatform.endpoints.predict' denied on resource '//aiplatform.googleapis.com/${resource}' (or it may not exist).`,
      );
    }
    if (!(this.#options.locations[location] ?? []).includes(modelId)) {
      return google(404, 'NOT_FOUND', `Publisher Model \`${resource}\` not found.`);
    }
    if (method !== 'rawPredict') return google(400, 'INVALID_ARGUMENT', 'FakeVertexServer serves only rawPredict.');

    const body = request.body;
    if ('model' in body) return anthropic('invalid_request_error', 'model: Extra inputs are not permitted');
    if (typeof body.anthropic_version !== 'string' || body.anthropic_version === '') {
      return anthropic('invalid_request_error', 'anthropic_version: Field required');
    }
    const problem = validateRequest({ ...body, model: modelId });
    if (problem !== undefined) return anthropic('invalid_request_error', problem);

    const reply = await this.nextReply(body, request);
    if (reply === undefined) return google(500, 'INTERNAL', 'FakeVertexServer: no reply scripted for this request');
    if ('status' in reply) return google(reply.status, reply.type, reply.message);
    request.status = 200;
    sendJson(res, 200, messageBody(reply, { ...body, model: reply.model ?? modelId.replace(/@.*$/, '') }));
  }
}

export async function startFakeVertex(options: FakeVertexOptions): Promise<FakeVertexServer> {
  return new FakeVertexServer(options).start();
}
