/**
 * Builds an OpenAPI 3.1 document from zod schemas (zod 4's own JSON Schema output, draft 2020-12, which
 * is OpenAPI 3.1's schema dialect). Request bodies are converted as the validator reads them (io
 * "input": defaults optional, unknown fields allowed where the route ignores them); response bodies as
 * the handlers write them (io "output": closed objects, so an undocumented field fails the response
 * test). The table of operations lives with the routes (routes/openapi.ts).
 */
import { z } from "zod";

type JsonSchema = Record<string, unknown>;
export type Method = "get" | "post" | "patch" | "delete";
/** "key": a bearer API key; "admin": the bearer ADMIN_TOKEN; "none": public. */
export type Auth = "key" | "admin" | "none";

export interface Param {
  schema: z.ZodType;
  description: string;
  required?: boolean;
}

export interface Reply<Res extends string> {
  description: string;
  /** application/json body: a component name. */
  json?: Res;
  /** text/event-stream: each `data:` event is one of these (and the stream ends with `data: [DONE]`). */
  events?: Res[];
  /** x-ratelimit-* headers (metered and counted routes). */
  rateLimited?: boolean;
  /** A raw body of this media type (or one of these, by the request's Accept) instead of JSON (a file's bytes). */
  raw?: string | string[];
}

export interface Operation<Req extends string, Res extends string> {
  method: Method;
  /** OpenAPI path template, e.g. /v1/models/{id}. */
  path: string;
  summary: string;
  description?: string;
  tag: string;
  auth: Auth;
  query?: Record<string, Param>;
  headers?: Record<string, Param>;
  /** Path parameters by name (each `{name}` of `path`). */
  params?: Record<string, Param>;
  body?: Req;
  /** The body is multipart/form-data (a file upload) rather than JSON. */
  multipart?: boolean;
  responses: Record<string, Reply<Res>>;
}

export interface Spec<Req extends string, Res extends string> {
  info: { title: string; version: string; description: string };
  requests: Record<Req, z.ZodType>;
  responses: Record<Res, z.ZodType>;
  /** The component every error status (4XX, 5XX) refers to. */
  error: Res;
  operations: Operation<Req, Res>[];
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

/** Components from named schemas; names must not clash across requests and responses. */
function components(schemas: Record<string, z.ZodType>, io: "input" | "output"): Record<string, JsonSchema> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(schemas)) registry.add(schema, { id });
  const out = z.toJSONSchema(registry, { io, uri: (id) => `#/components/schemas/${id}` }).schemas;
  // Each component is a subschema of the document: its own $schema and $id would make it a resource apart.
  return Object.fromEntries(Object.entries(out).map(([id, { $schema, $id, ...s }]) => [id, s as JsonSchema]));
}

function inline(schema: z.ZodType): JsonSchema {
  const { $schema, ...s } = z.toJSONSchema(schema, { io: "input" }) as JsonSchema;
  return s;
}

function parameters(where: "query" | "header" | "path", params: Record<string, Param> = {}) {
  return Object.entries(params).map(([name, p]) => ({
    name,
    in: where,
    required: where === "path" || p.required === true,
    description: p.description,
    schema: inline(p.schema),
  }));
}

const RATE_HEADERS = ["requests", "tokens"].flatMap((what) =>
  ["limit", "remaining", "reset"].map((k) => `x-ratelimit-${k}-${what}`),
);

function reply<Res extends string>(r: Reply<Res>) {
  const content: Record<string, unknown> = {};
  if (r.json) content["application/json"] = { schema: ref(r.json) };
  if (r.events) content["text/event-stream"] = { schema: { anyOf: r.events.map(ref) } };
  for (const t of typeof r.raw === "string" ? [r.raw] : (r.raw ?? []))
    content[t] = { schema: { type: "string", contentMediaType: t } };
  const headers: Record<string, unknown> = { "x-request-id": { $ref: "#/components/headers/RequestId" } };
  if (r.rateLimited) for (const h of RATE_HEADERS) headers[h] = { schema: { type: "string" } };
  return { description: r.description, headers, ...(r.events || r.json || r.raw ? { content } : {}) };
}

const SECURITY: Record<Auth, Record<string, string[]>[]> = {
  key: [{ apiKey: [] }],
  admin: [{ adminToken: [] }],
  none: [],
};

export function openApiDocument<Req extends string, Res extends string>(spec: Spec<Req, Res>) {
  const clash = Object.keys(spec.requests).filter((k) => k in spec.responses);
  if (clash.length) throw new Error(`OpenAPI component names used twice: ${clash.join(", ")}`);
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of spec.operations) {
    const errorReply = (description: string) => reply<Res>({ description, json: spec.error });
    paths[op.path] ??= {};
    paths[op.path]![op.method] = {
      operationId: `${op.method}${op.path.replace(/[{}]/g, "").replace(/[/_.-]+(\w)/g, (_, ch: string) => ch.toUpperCase())}`,
      summary: op.summary,
      ...(op.description ? { description: op.description } : {}),
      tags: [op.tag],
      security: SECURITY[op.auth],
      parameters: [
        ...parameters("path", op.params),
        ...parameters("query", op.query),
        ...parameters("header", op.headers),
      ],
      ...(op.body
        ? {
            requestBody: {
              required: true,
              content: { [op.multipart ? "multipart/form-data" : "application/json"]: { schema: ref(op.body) } },
            },
          }
        : {}),
      responses: {
        ...Object.fromEntries(Object.entries(op.responses).map(([status, r]) => [status, reply(r)])),
        "4XX": errorReply("The request was refused (the error names why; `param` the field at fault)."),
        "5XX": errorReply("The service failed or is unavailable; retry later."),
      },
    };
  }
  return {
    openapi: "3.1.0",
    info: spec.info,
    tags: [...new Set(spec.operations.map((o) => o.tag))].map((name) => ({ name })),
    paths,
    components: {
      schemas: { ...components(spec.requests, "input"), ...components(spec.responses, "output") },
      securitySchemes: {
        apiKey: { type: "http", scheme: "bearer", description: "An API key (`Authorization: Bearer sk-...`)." },
        adminToken: { type: "http", scheme: "bearer", description: "The worker's ADMIN_TOKEN secret." },
      },
      headers: {
        RequestId: { description: "This request's id (the usage ledger's key).", schema: { type: "string" } },
      },
    },
  };
}

export type OpenApiDocument = ReturnType<typeof openApiDocument>;
