/**
 * A local fake of the Amazon Bedrock Runtime InvokeModel API for Anthropic models
 * (`POST /model/{modelId}/invoke`, non-streaming) that speaks its wire format, so the real
 * `@anthropic-ai/bedrock-sdk` can talk to it through `baseURL`.
 *
 * Like AWS it checks, in order: a SigV4 `Authorization` header; a known access key id; a
 * credential scope for this endpoint's region and the `bedrock` service; the signature
 * itself (recomputed with the secret key); a model offered in the region; a body without
 * `model` or `stream` and with `anthropic_version`. Refusals carry AWS's status, error
 * type (`x-amzn-ErrorType`) and `{"message": …}` body. The SDK's streaming endpoint
 * (`/invoke-with-response-stream`) is not served: Handoff does not stream.
 */
import type { ServerResponse } from 'node:http';
import { Sha256 } from '@aws-crypto/sha256-js';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { messageBody, validateRequest } from './anthropic-server.ts';
import { CloudMessagesFake, type CloudRequest, headerValue, requestId, sendJson } from './cloud-messages-fake.ts';

/** AWS's documented example identity; never a real one. */
export const exampleCredentials = {
  accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
} as const;

export interface FakeBedrockOptions {
  /** The region this endpoint serves, as `bedrock-runtime.<region>.amazonaws.com` would. Default us-east-1. */
  region?: string;
  /** Model ids (and inference profile ids) offered in that region. */
  models: string[];
  /** Identities it knows. Default: the AWS example identity. */
  credentials?: { accessKeyId: string; secretAccessKey: string }[];
}

/** What the signature said about the caller, recorded with each request. */
export interface SigV4Scope {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  signedHeaders: string[];
  signature: string;
}

export class FakeBedrockServer extends CloudMessagesFake {
  readonly region: string;
  readonly #models: Set<string>;
  readonly #credentials: Map<string, string>;
  /** The SigV4 scope of each request, in order (undefined where there was none). */
  readonly scopes: (SigV4Scope | undefined)[] = [];

  constructor(options: FakeBedrockOptions) {
    super();
    this.region = options.region ?? 'us-east-1';
    this.#models = new Set(options.models);
    this.#credentials = new Map(
      (options.credentials ?? [exampleCredentials]).map((c) => [c.accessKeyId, c.secretAccessKey]),
    );
  }

  /** For the SDK's `baseURL` (ANTHROPIC_BEDROCK_BASE_URL). */
  get url(): string {
    return this.origin;
  }

  protected async serve(request: CloudRequest, res: ServerResponse): Promise<void> {
    const refuse = (status: number, type: string, message: string, namespace = 'com.amazon.bedrock') => {
      request.status = status;
      request.errorType = type;
      sendJson(
        res,
        status,
        { message },
        {
          'x-amzn-errortype': `${type}:http://internal.amazon.com/coral/${namespace}/`,
          'x-amzn-requestid': requestId(),
        },
      );
    };
    const coral = 'com.amazon.coral.service';

    const authorization = headerValue(request.headers.authorization);
    const scope = authorization === undefined ? undefined : parseSigV4(authorization);
    this.scopes.push(scope);
    if (authorization === undefined)
      return refuse(403, 'MissingAuthenticationTokenException', 'Missing Authentication Token', coral);
    if (scope === undefined) {
      return refuse(
        403,
        'IncompleteSignatureException',
        `Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters. Authorization=${authorization.split(' ')[0]}`,
        coral,
      );
    }
    const secret = this.#credentials.get(scope.accessKeyId);
    if (secret === undefined) {
      return refuse(
        403,
        'UnrecognizedClientException',
        'The security token included in the request is invalid.',
        coral,
      );
    }
    if (scope.region !== this.region) {
      return refuse(403, 'InvalidSignatureException', 'Credential should be scoped to a valid region. ', coral);
    }
    if (scope.service !== 'bedrock') {
      return refuse(
        403,
        'InvalidSignatureException',
        "Credential should be scoped to correct service: 'bedrock'. ",
        coral,
      );
    }
    if (!(await signatureMatches(request, scope, secret))) {
      return refuse(
        403,
        'InvalidSignatureException',
        'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
        coral,
      );
    }

    const route = /^\/model\/([^/]+)\/(invoke|invoke-with-response-stream)$/.exec(request.path);
    if (request.method !== 'POST' || route === null) {
      return refuse(404, 'UnknownOperationException', '', coral);
    }
    if (route[2] !== 'invoke') {
      return refuse(400, 'ValidationException', 'FakeBedrockServer serves only InvokeModel (no response streams).');
    }
    const modelId = decodeURIComponent(route[1] ?? '');
    request.modelId = modelId;
    if (!this.#models.has(modelId))
      return refuse(400, 'ValidationException', 'The provided model identifier is invalid.');

    const body = request.body;
    const malformed = (what: string) =>
      refuse(
        400,
        'ValidationException',
        `Malformed input request: #: ${what}, please reformat your input and try again.`,
      );
    if (request.rawBody.trim() === '' || Object.keys(body).length === 0) return malformed('expected type: JSONObject');
    for (const key of ['model', 'stream']) {
      if (key in body) return malformed(`extraneous key [${key}] is not permitted`);
    }
    if (typeof body.anthropic_version !== 'string' || body.anthropic_version === '') {
      return malformed('required key [anthropic_version] not found');
    }
    const problem = validateRequest({ ...body, model: modelId });
    if (problem !== undefined) return refuse(400, 'ValidationException', problem);

    const reply = await this.nextReply(body, request);
    if (reply === undefined) {
      return refuse(400, 'ValidationException', 'FakeBedrockServer: no reply scripted for this request');
    }
    if ('status' in reply) return refuse(reply.status, reply.type, reply.message);
    request.status = 200;
    const message = messageBody(reply, {
      ...body,
      model: reply.model ?? modelId.replace(/^([a-z]{2,6}\.)?anthropic\./, ''),
    });
    sendJson(res, 200, message, {
      'x-amzn-requestid': requestId(),
      'x-amzn-bedrock-input-token-count': String(message.usage.input_tokens),
      'x-amzn-bedrock-output-token-count': String(message.usage.output_tokens),
    });
  }
}

export async function startFakeBedrock(options: FakeBedrockOptions): Promise<FakeBedrockServer> {
  return new FakeBedrockServer(options).start();
}

/** `AWS4-HMAC-SHA256 Credential=AKID/20261203/eu-central-1/bedrock/aws4_request, SignedHeaders=…, Signature=…`. */
export function parseSigV4(authorization: string): SigV4Scope | undefined {
  const m =
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(
      authorization,
    );
  if (m === null) return undefined;
  return {
    accessKeyId: m[1]!,
    date: m[2]!,
    region: m[3]!,
    service: m[4]!,
    signedHeaders: m[5]!.split(';'),
    signature: m[6]!,
  };
}

/** Signs the received request again with the secret key and compares, as AWS does. */
async function signatureMatches(request: CloudRequest, scope: SigV4Scope, secretAccessKey: string): Promise<boolean> {
  const headers: Record<string, string> = {};
  for (const name of scope.signedHeaders) {
    const value = headerValue(request.headers[name]);
    if (value === undefined) return false;
    headers[name] = value;
  }
  const amzDate = headers['x-amz-date'];
  const d = amzDate === undefined ? null : /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate);
  if (d === null) return false;
  const signingDate = new Date(Date.UTC(+d[1]!, +d[2]! - 1, +d[3]!, +d[4]!, +d[5]!, +d[6]!));
  const url = new URL(`http://fake${request.path}`);
  const signer = new SignatureV4({
    service: scope.service,
    region: scope.region,
    credentials: { accessKeyId: scope.accessKeyId, secretAccessKey },
    sha256: Sha256,
    applyChecksum: scope.signedHeaders.includes('x-amz-content-sha256'),
  });
  const signed = await signer.sign(
    new HttpRequest({
      method: request.method,
      protocol: 'http:',
      hostname: 'fake',
      path: url.pathname,
      headers,
      body: request.rawBody,
    }),
    { signingDate },
  );
  const expected = /Signature=([0-9a-f]{64})/.exec(String(signed.headers.authorization ?? ''))?.[1];
  return expected === scope.signature;
}

/**
 * Puts AWS credentials in the environment, where the SDK's standard chain finds them first
 * (as in production), and clears the others; returns the function that restores them.
 */
export function withAwsEnv(values: Record<string, string>): () => void {
  const keys = [
    'AWS_ACCESS_KEY_ID',
    'AWS_SECRET_ACCESS_KEY',
    'AWS_SESSION_TOKEN',
    'AWS_PROFILE',
    'AWS_BEARER_TOKEN_BEDROCK',
  ];
  const saved = Object.fromEntries(keys.map((k) => [k, process.env[k]]));
  for (const k of keys) delete process.env[k];
  Object.assign(process.env, values);
  return () => {
    for (const k of keys) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  };
}
