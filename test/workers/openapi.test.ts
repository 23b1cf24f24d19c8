/**
 * GET /openapi.json: public, OpenAPI 3.1, and in step with the app: every route the Hono app registers is
 * documented (except the deliberate exclusions below), every documented operation is a registered route,
 * and every $ref in the document resolves. (Responses are validated against it in
 * test/node/openapi-responses.test.ts, against the real stack.)
 */
import { SELF } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../worker/app";

/** Served by the worker but not the public API: the browser console's pages and assets, and backend-only hooks. */
const EXCLUDED = [/^\/console(\/|$)/, /^\/internal\//];

type Doc = {
  openapi: string;
  paths: Record<string, Record<string, { security?: unknown[]; responses: Record<string, unknown> }>>;
  components: Record<string, Record<string, unknown>>;
};
let doc: Doc;
let res: Response;

beforeAll(async () => {
  res = await SELF.fetch("https://edge.test/openapi.json");
  doc = await res.json();
});

/** Hono's `/v1/models/:id{.+}` -> OpenAPI's `/v1/models/{id}`; a mounted sub-app's "/" has no trailing slash. */
const openApiPath = (p: string) => p.replace(/:(\w+)(\{[^}]*\})?/g, "{$1}").replace(/(.)\/$/, "$1");

function registered(): string[] {
  const routes = createApp().routes.filter((r) => r.method !== "ALL"); // "ALL": middleware (use)
  return [
    ...new Set(
      routes
        .map((r) => ({ method: r.method.toLowerCase(), path: openApiPath(r.path) }))
        .filter((r) => !EXCLUDED.some((re) => re.test(r.path)))
        .map((r) => `${r.method} ${r.path}`),
    ),
  ].sort();
}

function documented(): string[] {
  return Object.entries(doc.paths)
    .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`))
    .sort();
}

describe("GET /openapi.json", () => {
  it("is served without a key, as OpenAPI 3.1 JSON any origin may read", () => {
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    expect(doc.openapi).toBe("3.1.0");
  });

  it("documents every route the app serves, and only those", () => {
    const routes = registered();
    expect(routes.length).toBeGreaterThan(15);
    expect(documented()).toEqual(routes);
  });

  it("the exclusions are real routes (so the list cannot go stale silently)", () => {
    const paths = createApp().routes.map((r) => r.path);
    for (const re of EXCLUDED)
      expect(
        paths.some((p) => re.test(p)),
        String(re),
      ).toBe(true);
  });

  it("auth per operation: a bearer key on /v1, the admin token on /v1/admin, none on /health and the document", () => {
    expect(doc.components.securitySchemes).toMatchObject({
      apiKey: { type: "http", scheme: "bearer" },
      adminToken: { type: "http", scheme: "bearer" },
    });
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const op of Object.values(ops)) {
        const want = path.startsWith("/v1/admin/")
          ? [{ adminToken: [] }]
          : path.startsWith("/v1/")
            ? [{ apiKey: [] }]
            : [];
        expect(op.security, path).toEqual(want);
      }
    }
  });

  it("chat documents both its JSON answer and its event stream; every $ref resolves", () => {
    const ok = doc.paths["/v1/chat/completions"]!.post!.responses["200"] as { content: Record<string, unknown> };
    expect(Object.keys(ok.content).sort()).toEqual(["application/json", "text/event-stream"]);
    const refs = JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? [];
    expect(refs.length).toBeGreaterThan(20);
    for (const r of new Set(refs)) {
      const [, section, name] = /^"\$ref":"#\/components\/(\w+)\/(.+)"$/.exec(r) ?? [];
      expect(doc.components[section!]?.[name!], r).toBeDefined();
    }
  });

  it("request bodies come from the validators: a limit they enforce is in the document", async () => {
    const schemas = doc.components.schemas as Record<string, { properties: Record<string, unknown> }>;
    expect(schemas.ChatCompletionRequest!.properties.top_p).toEqual({
      anyOf: [{ type: "number", minimum: 0, maximum: 1 }, { type: "null" }],
    });
    expect(schemas.CreateKeyRequest).toMatchObject({ required: ["name", "tiers"], additionalProperties: false });
  });
});
