/**
 * A local fake of an OpenTelemetry collector's OTLP/HTTP trace receiver: `POST /v1/traces`
 * with an `ExportTraceServiceRequest` in the OTLP JSON encoding, which is what
 * `@opentelemetry/exporter-trace-otlp-http` sends (`Content-Type: application/json`, ids as
 * hex strings, gzip when OTEL_EXPORTER_OTLP_COMPRESSION says so). It answers as a collector
 * does (200 with an empty `ExportTraceServiceResponse`) and records every span, flattened,
 * with its resource's `service.name`. A protobuf body is refused with 415, loudly, rather
 * than guessed at.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

export type AttributeValue = string | number | boolean | AttributeValue[] | null;

export interface RecordedSpan {
  service: string;
  traceId: string;
  spanId: string;
  /** Empty for a root span. */
  parentSpanId: string;
  name: string;
  attributes: Record<string, AttributeValue>;
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  statusCode: number;
  statusMessage: string;
}

export interface FakeOtlpCollector {
  /** Base URL, for OTEL_EXPORTER_OTLP_ENDPOINT (spans then go to `<url>/v1/traces`). */
  url: string;
  spans: RecordedSpan[];
  /** Export requests received (each may carry many spans). */
  requests: number;
  /** Requests refused (wrong path, method or encoding), with why. */
  refused: string[];
  close(): Promise<void>;
}

interface OtlpKeyValue {
  key: string;
  value?: OtlpAnyValue;
}
interface OtlpAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: number | string;
  doubleValue?: number;
  arrayValue?: { values?: OtlpAnyValue[] };
  kvlistValue?: { values?: OtlpKeyValue[] };
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes?: OtlpKeyValue[];
  status?: { code?: number; message?: string };
}
interface ExportTraceServiceRequest {
  resourceSpans?: Array<{
    resource?: { attributes?: OtlpKeyValue[] };
    scopeSpans?: Array<{ spans?: OtlpSpan[] }>;
  }>;
}

function anyValue(v: OtlpAnyValue | undefined): AttributeValue {
  if (!v) return null;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(anyValue);
  if (v.kvlistValue) return JSON.stringify(v.kvlistValue);
  return null;
}

function attributesOf(list: OtlpKeyValue[] | undefined): Record<string, AttributeValue> {
  return Object.fromEntries((list ?? []).map((kv) => [kv.key, anyValue(kv.value)]));
}

async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const raw = Buffer.concat(chunks);
  return req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
}

export async function startOtlpCollector(): Promise<FakeOtlpCollector> {
  const collector: Omit<FakeOtlpCollector, 'url' | 'close'> = { spans: [], requests: 0, refused: [] };
  const server: Server = createServer((req, res) => {
    void (async () => {
      const refuse = (status: number, why: string) => {
        collector.refused.push(why);
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ message: why }));
      };
      if (req.method !== 'POST' || req.url !== '/v1/traces') return refuse(404, `${req.method} ${req.url}`);
      const type = String(req.headers['content-type'] ?? '');
      if (!type.startsWith('application/json')) return refuse(415, `content-type ${type}`);
      let parsed: ExportTraceServiceRequest;
      try {
        parsed = JSON.parse((await body(req)).toString('utf8')) as ExportTraceServiceRequest;
      } catch (err) {
        return refuse(400, `not JSON: ${(err as Error).message}`);
      }
      collector.requests += 1;
      for (const rs of parsed.resourceSpans ?? []) {
        const resource = attributesOf(rs.resource?.attributes);
        for (const ss of rs.scopeSpans ?? [])
          for (const s of ss.spans ?? [])
            collector.spans.push({
              service: String(resource['service.name'] ?? ''),
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId ?? '',
              name: s.name,
              attributes: attributesOf(s.attributes),
              statusCode: s.status?.code ?? 0,
              statusMessage: s.status?.message ?? '',
            });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    })().catch((err: unknown) => {
      collector.refused.push(String(err));
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(collector, {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
