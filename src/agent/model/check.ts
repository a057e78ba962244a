import Anthropic from '@anthropic-ai/sdk';
import { HandoffError } from '../../core/index.ts';
import { apiErrorInfo, MessagesProvider } from './messages-provider.ts';
import type { ModelProvider } from './provider.ts';

/** One line of `handoff doctor`: whether the configured model answers, and the fix when it does not. */
export interface ModelCheck {
  name: 'Model';
  ok: boolean;
  /** Answered, but not confirmed usable (rate-limited, overloaded): printed as `warn`. */
  warn?: boolean;
  detail: string;
  fix?: string;
}

export interface CheckModelOptions {
  /** Gives up on the request after this long. Default 30 s. */
  timeoutMs?: number;
}

/**
 * Makes one tiny real request (one word in, at most one token out) to the configured
 * provider and says what is wrong when it fails: the credentials, the model id or the
 * region. The demo model needs no request.
 */
export async function checkModel(provider: ModelProvider, options: CheckModelOptions = {}): Promise<ModelCheck> {
  if (provider.demo || !(provider instanceof MessagesProvider)) {
    return {
      name: 'Model',
      ok: true,
      detail: provider.demo
        ? 'demo model (bundled sample tasks only); set ANTHROPIC_API_KEY or HANDOFF_MODEL_PROVIDER to use Claude'
        : `${provider.name}, model ${provider.model}`,
    };
  }
  const where = `${provider.label}, model ${provider.model}`;
  const started = performance.now();
  try {
    const res = await provider.createMessage(
      { system: [], tools: [], messages: [{ role: 'user', content: 'ping' }], maxTokens: 1 },
      AbortSignal.timeout(options.timeoutMs ?? 30_000),
    );
    const ms = Math.round(performance.now() - started);
    const served = res.model !== provider.model && res.model !== '' ? ` (served by ${res.model})` : '';
    return { name: 'Model', ok: true, detail: `${where} answered in ${ms} ms${served}` };
  } catch (err) {
    const d = diagnose(provider, err);
    return {
      name: 'Model',
      ok: d.warn === true,
      ...(d.warn ? { warn: true } : {}),
      detail: `${where}: ${d.detail}`,
      fix: d.fix,
    };
  }
}

interface Diagnosis {
  detail: string;
  fix: string;
  warn?: boolean;
}

function diagnose(provider: MessagesProvider, err: unknown): Diagnosis {
  const said = err instanceof Error ? err.message : String(err);
  const cause = err instanceof HandoffError ? err.cause : err;
  if (
    cause instanceof Anthropic.APIUserAbortError ||
    (err instanceof HandoffError && err.code === 'handoff_cancelled')
  ) {
    return { detail: 'no answer in time', fix: 'the network path to the endpoint (proxy, firewall, VPC endpoint)' };
  }
  if (cause instanceof Anthropic.APIConnectionError) {
    return connectionDiagnosis(provider, said, cause);
  }
  if (cause instanceof Anthropic.APIError) {
    const info = apiErrorInfo(cause);
    const status = info.status;
    const text = info.message ?? '';
    if (status === 429) {
      return {
        warn: true,
        detail: `rate limited (${said}); the credentials and model were accepted`,
        fix: 'quota and rate limits of the account',
      };
    }
    if (status !== undefined && status >= 500) {
      return {
        warn: true,
        detail: `the service failed (${said})`,
        fix: 'try again later; the status page of the platform',
      };
    }
    switch (provider.name) {
      case 'bedrock':
        return bedrockDiagnosis(provider, said, info.type ?? '', text, status);
      case 'vertex':
        return vertexDiagnosis(provider, said, info.type ?? '', text, status);
      default:
        return anthropicDiagnosis(provider, said, info.type ?? '', status);
    }
  }
  return { detail: said, fix: 'the model settings (see docs/models.md)' };
}

function anthropicDiagnosis(p: MessagesProvider, said: string, type: string, status?: number): Diagnosis {
  if (status === 401 || type === 'authentication_error') {
    return { detail: `the API key was refused (${said})`, fix: 'set ANTHROPIC_API_KEY to a valid key' };
  }
  if (status === 403 || type === 'permission_error') {
    return {
      detail: `the API key may not use this model (${said})`,
      fix: `a key whose workspace may use ${p.model}, or another HANDOFF_MODEL`,
    };
  }
  if (status === 404 || type === 'not_found_error') {
    return {
      detail: `the model id was not found (${said})`,
      fix: `set HANDOFF_MODEL to a model the API offers (e.g. claude-sonnet-4-5)`,
    };
  }
  return { detail: said, fix: 'ANTHROPIC_API_KEY, HANDOFF_MODEL and ANTHROPIC_BASE_URL' };
}

function bedrockDiagnosis(p: MessagesProvider, said: string, type: string, text: string, status?: number): Diagnosis {
  const region = p.region ?? '?';
  const credentialsFix =
    'the AWS credentials Handoff runs with: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_PROFILE, or the instance, task or pod role';
  if (/model identifier is invalid/i.test(text) || type === 'ResourceNotFoundException') {
    return {
      detail: `the model id is wrong or not offered in ${region} (${said})`,
      fix: `set HANDOFF_MODEL to a Bedrock model id or inference profile offered in ${region} (aws bedrock list-inference-profiles --region ${region}; aws bedrock list-foundation-models --region ${region} --by-provider anthropic), or set AWS_REGION to a region that offers ${p.model}`,
    };
  }
  if (/on-demand throughput/i.test(text)) {
    return {
      detail: `${p.model} is served in ${region} only through an inference profile (${said})`,
      fix: `set HANDOFF_MODEL to an inference profile id, e.g. global.${p.model.replace(/^[a-z]{2,6}\.(?=anthropic\.)/, '')}`,
    };
  }
  if (type === 'InvalidSignatureException' && /scoped to/i.test(text) && /region/i.test(text)) {
    return {
      detail: `the endpoint does not serve the region the request was signed for, AWS_REGION=${region} (${said})`,
      fix: 'set AWS_REGION to the region of the Bedrock endpoint (the one in ANTHROPIC_BEDROCK_BASE_URL), or unset ANTHROPIC_BEDROCK_BASE_URL',
    };
  }
  if (
    status === 401 ||
    type === 'UnrecognizedClientException' ||
    type === 'InvalidSignatureException' ||
    type === 'ExpiredTokenException' ||
    type === 'IncompleteSignatureException'
  ) {
    return { detail: `the AWS credentials were refused (${said})`, fix: credentialsFix };
  }
  if (status === 403 || type === 'AccessDeniedException') {
    return {
      detail: `the AWS identity may not invoke ${p.model} in ${region} (${said})`,
      fix: `allow bedrock:InvokeModel on the model (and on the inference profile, if one is used) to this identity, and enable access to the Anthropic model in the Bedrock console in ${region}`,
    };
  }
  return { detail: said, fix: 'HANDOFF_MODEL, AWS_REGION and ANTHROPIC_BEDROCK_BASE_URL' };
}

function vertexDiagnosis(p: MessagesProvider, said: string, type: string, text: string, status?: number): Diagnosis {
  const region = p.region ?? '?';
  if (status === 401 || type === 'UNAUTHENTICATED') {
    return {
      detail: `the Google credentials were refused (${said})`,
      fix: 'Application Default Credentials: `gcloud auth application-default login`, GOOGLE_APPLICATION_CREDENTIALS, or the workload identity of the pod or VM',
    };
  }
  if (status === 404 || type === 'NOT_FOUND') {
    return {
      detail: `the model was not found in ${region} (${said})`,
      fix: `set HANDOFF_MODEL to a Vertex model id (e.g. claude-sonnet-4-5@20250929) that is enabled in Model Garden and offered in ${region}, or set CLOUD_ML_REGION to a region that offers it (or global)`,
    };
  }
  if (status === 403 || type === 'PERMISSION_DENIED') {
    return /has not been used|is disabled|SERVICE_DISABLED/i.test(text)
      ? {
          detail: `the Vertex AI API is off in the project (${said})`,
          fix: 'gcloud services enable aiplatform.googleapis.com --project <ANTHROPIC_VERTEX_PROJECT_ID>',
        }
      : {
          detail: `the Google identity may not use Vertex AI in this project (${said})`,
          fix: 'grant roles/aiplatform.user on the project to this identity, and check ANTHROPIC_VERTEX_PROJECT_ID',
        };
  }
  return { detail: said, fix: 'HANDOFF_MODEL, CLOUD_ML_REGION and ANTHROPIC_VERTEX_PROJECT_ID' };
}

function connectionDiagnosis(p: MessagesProvider, said: string, cause: Error): Diagnosis {
  const why = cause.message;
  if (p.name === 'bedrock' && /AWS credentials/i.test(why)) {
    return {
      detail: `no AWS credentials were found (${said})`,
      fix: 'give Handoff AWS credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance, task or pod role',
    };
  }
  if (p.name === 'vertex' && /Google OAuth/i.test(why)) {
    return {
      detail: `no Google credentials were found (${said})`,
      fix: 'Application Default Credentials: `gcloud auth application-default login`, GOOGLE_APPLICATION_CREDENTIALS, or the workload identity of the pod or VM',
    };
  }
  const fix =
    p.name === 'bedrock'
      ? `that AWS_REGION=${p.region} is a region with Bedrock, ANTHROPIC_BEDROCK_BASE_URL if set, and the network path (proxy, firewall, VPC endpoint)`
      : p.name === 'vertex'
        ? `that CLOUD_ML_REGION=${p.region} is a Vertex AI location, ANTHROPIC_VERTEX_BASE_URL if set, and the network path`
        : 'ANTHROPIC_BASE_URL if set, and the network path (proxy, firewall)';
  return { detail: `could not connect (${said})`, fix };
}
