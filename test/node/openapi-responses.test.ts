/**
 * The OpenAPI document against the real local stack (npm start's launcher -> wrangler dev -> backend):
 * the document is fetched from the running worker, and real responses of every documented operation
 * (successes, a stream's events, errors) are validated with a JSON Schema 2020-12 validator (ajv, strict)
 * against the schema the document declares for that operation, status and content type.
 */
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Stack, useSharedStack } from "./helpers/stack";

type Reply = { content?: Record<string, { schema: object }>; headers?: Record<string, unknown> };
type Doc = { paths: Record<string, Record<string, { responses: Record<string, Reply> }>>; components: object };

let stack: Stack;
let doc: Doc;
const ajv = new Ajv2020({ strict: true, allErrors: true, validateFormats: false });
// The document is added whole, so its "#/components/..." refs resolve; `components` is just a container.
ajv.addVocabulary(["components"]);
const compiled = new Map<string, ValidateFunction>();
/** "method template" of every operation a response was validated for. */
const exercised = new Set<string>();

beforeAll(async () => {
  stack = await useSharedStack();
  const res = await fetch(`${stack.base}/openapi.json`);
  expect(res.status).toBe(200);
  doc = (await res.json()) as Doc;
  ajv.addSchema({ $id: "openapi.json", components: doc.components });
}, 300_000);

afterAll(async () => {
  await stack?.stop();
});

/** The validator the document declares for this operation, status (exact, else 4XX/5XX) and media type. */
function validatorFor(method: string, template: string, status: number, mediaType: string): ValidateFunction {
  const op = doc.paths[template]?.[method];
  expect(op, `${method} ${template} is documented`).toBeDefined();
  const reply = op!.responses[String(status)] ?? op!.responses[`${String(status)[0]}XX`];
  expect(reply, `${method} ${template} documents ${status}`).toBeDefined();
  expect(reply!.headers).toHaveProperty("x-request-id");
  const schema = reply!.content?.[mediaType]?.schema;
  expect(schema, `${method} ${template} ${status} documents ${mediaType}`).toBeDefined();
  const key = JSON.stringify(schema);
  let v = compiled.get(key);
  if (!v) {
    v = ajv.compile(JSON.parse(key.replaceAll('"#/components/', '"openapi.json#/components/')));
    compiled.set(key, v);
  }
  return v;
}

function expectValid(v: ValidateFunction, value: unknown, what: string): void {
  const ok = v(value);
  expect(ok ? null : { what, errors: v.errors, value }).toBeNull();
}

/** Sends the request and validates its JSON body against the document; returns the body. */
async function call(
  method: string,
  template: string,
  path: string,
  init: { body?: unknown; auth?: "key" | "admin" | "none"; expect?: number } = {},
): Promise<Record<string, any>> {
  const auth = init.auth ?? "key";
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (auth !== "none") headers.authorization = `Bearer ${auth === "admin" ? stack.adminToken : stack.apiKey}`;
  const res = await fetch(`${stack.base}${path}`, {
    method: method.toUpperCase(),
    headers,
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const text = await res.text();
  expect(res.status, text).toBe(init.expect ?? (method === "post" && template === "/v1/admin/keys" ? 201 : 200));
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  expect(res.headers.get("x-request-id")).toMatch(/^req_/);
  const body = JSON.parse(text);
  expectValid(validatorFor(method, template, res.status, "application/json"), body, `${method} ${path}`);
  exercised.add(`${method} ${template}`);
  return body;
}

const chatBody = (extra: Record<string, unknown> = {}) => ({
  model: "mistral-tiny",
  messages: [{ role: "user", content: "Say something about lighthouses." }],
  max_tokens: 6,
  temperature: 0,
  ...extra,
});

describe("real responses match the OpenAPI document", () => {
  it("meta: /health and the document itself", async () => {
    expect(await call("get", "/health", "/health", { auth: "none" })).toEqual({ status: "ok" });
    expect((await call("get", "/openapi.json", "/openapi.json", { auth: "none" })).openapi).toBe("3.1.0");
  });

  it("chat: a JSON completion, and one with logprobs", async () => {
    const r = await call("post", "/v1/chat/completions", "/v1/chat/completions", { body: chatBody() });
    expect(r.object).toBe("chat.completion");
    const lp = await call("post", "/v1/chat/completions", "/v1/chat/completions", {
      body: chatBody({ logprobs: true, top_logprobs: 2 }),
    });
    expect(lp.choices[0].logprobs.content.length).toBeGreaterThan(0);
  });

  it("chat: every event of a stream (chunks, the usage chunk), then [DONE]", async () => {
    const res = await fetch(`${stack.base}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify(chatBody({ stream: true, stream_options: { include_usage: true } })),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const data = (await res.text())
      .split("\n\n")
      .filter((f) => f.startsWith("data: "))
      .map((f) => f.slice(6));
    expect(data.at(-1)).toBe("[DONE]");
    const events = data.slice(0, -1).map((d) => JSON.parse(d));
    expect(events.length).toBeGreaterThanOrEqual(3);
    const v = validatorFor("post", "/v1/chat/completions", 200, "text/event-stream");
    events.forEach((e, i) => {
      expectValid(v, e, `event ${i}`);
    });
    expect(events.at(-1).choices).toEqual([]); // include_usage's final chunk
  });

  it("errors: 400 naming the field, 401 without a key, 404 for an unknown model", async () => {
    const bad = await call("post", "/v1/chat/completions", "/v1/chat/completions", {
      body: chatBody({ temperature: 5 }),
      expect: 400,
    });
    expect(bad.error).toMatchObject({ type: "invalid_request_error", param: "temperature" });
    const anon = await call("get", "/v1/models", "/v1/models", { auth: "none", expect: 401 });
    expect(anon.error.type).toBe("authentication_error");
    const missing = await call("get", "/v1/models/{id}", "/v1/models/no-such-model", { expect: 404 });
    expect(missing.error.type).toBe("not_found_error");
  });

  it("models: the list and one model", async () => {
    const list = await call("get", "/v1/models", "/v1/models");
    expect(list.data.map((m: { id: string }) => m.id)).toContain("mistral-small");
    expect((await call("get", "/v1/models/{id}", "/v1/models/mistral-small")).id).toBe("mistral-small");
  });

  it("embeddings: floats and base64", async () => {
    const floats = await call("post", "/v1/embeddings", "/v1/embeddings", {
      body: { model: "mistral-embed", input: ["a lighthouse", "the sea"] },
    });
    expect(floats.data).toHaveLength(2);
    const b64 = await call("post", "/v1/embeddings", "/v1/embeddings", {
      body: { model: "mistral-embed", input: "a lighthouse", encoding_format: "base64" },
    });
    expect(typeof b64.data[0].embedding).toBe("string");
  });

  it("tokenize (a prompt, messages) and detokenize", async () => {
    const t = await call("post", "/v1/tokenize", "/v1/tokenize", { body: { model: "mistral-tiny", prompt: "Hello" } });
    await call("post", "/v1/tokenize", "/v1/tokenize", {
      body: { model: "mistral-tiny", messages: [{ role: "user", content: "Hi" }] },
    });
    const d = await call("post", "/v1/detokenize", "/v1/detokenize", {
      body: { model: "mistral-tiny", tokens: t.tokens },
    });
    expect(d.prompt).toBe("Hello");
  });

  it("the key's own status, usage and records", async () => {
    expect((await call("get", "/v1/key", "/v1/key")).object).toBe("key");
    await call("get", "/v1/usage", "/v1/usage");
    // The chats above are settled after their responses: poll until their records are in the ledger.
    for (;;) {
      const records = await call("get", "/v1/usage/requests", "/v1/usage/requests?limit=5");
      if (records.data.length > 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect((await call("get", "/v1/usage", "/v1/usage")).data.length).toBeGreaterThan(0);
  });

  it("admin: keys (create, list, get, change, revoke), usage, records, dead letters", async () => {
    const admin = { auth: "admin" as const };
    const created = await call("post", "/v1/admin/keys", "/v1/admin/keys", {
      ...admin,
      body: { name: "openapi", tiers: ["mistral-tiny"] },
    });
    const path = `/v1/admin/keys/${created.id}`;
    await call("get", "/v1/admin/keys", "/v1/admin/keys", admin);
    await call("get", "/v1/admin/keys/{id}", path, admin);
    expect((await call("patch", "/v1/admin/keys/{id}", path, { ...admin, body: { rpm: 7 } })).rpm).toBe(7);
    expect((await call("delete", "/v1/admin/keys/{id}", path, admin)).deleted).toBe(true);
    expect((await call("get", "/v1/admin/usage", "/v1/admin/usage", admin)).data.length).toBeGreaterThan(0);
    await call("get", "/v1/admin/usage/requests", "/v1/admin/usage/requests?limit=3", admin);
    await call("get", "/v1/admin/usage/dead-letters", "/v1/admin/usage/dead-letters", admin);
    await call("post", "/v1/admin/usage/dead-letters/replay", "/v1/admin/usage/dead-letters/replay?limit=5", admin);
  });

  it("files and batches: upload, list, get, content, batch create/list/get/cancel, delete", async () => {
    const line = JSON.stringify({ custom_id: "a", method: "POST", url: "/v1/chat/completions", body: chatBody() });
    const form = new FormData();
    form.set("purpose", "batch");
    form.set("file", new Blob([`${line}\n`], { type: "application/jsonl" }), "input.jsonl");
    const up = await fetch(`${stack.base}/v1/files`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.apiKey}` },
      body: form,
    });
    expect(up.status).toBe(200);
    const file = (await up.json()) as { id: string };
    expectValid(validatorFor("post", "/v1/files", 200, "application/json"), file, "post /v1/files");
    exercised.add("post /v1/files");
    const fpath = `/v1/files/${file.id}`;
    expect((await call("get", "/v1/files", "/v1/files?purpose=batch")).data.length).toBeGreaterThan(0);
    expect((await call("get", "/v1/files/{id}", fpath)).id).toBe(file.id);
    const content = await fetch(`${stack.base}${fpath}/content`, {
      headers: { authorization: `Bearer ${stack.apiKey}` },
    });
    expect(content.status).toBe(200);
    expect(content.headers.get("content-type")).toMatch(/^application\/jsonl/);
    expect(doc.paths["/v1/files/{id}/content"]?.get?.responses["200"]?.content).toHaveProperty(["application/jsonl"]);
    expect(await content.text()).toBe(`${line}\n`);
    exercised.add("get /v1/files/{id}/content");

    const batch = await call("post", "/v1/batches", "/v1/batches", {
      body: { input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" },
    });
    const bpath = `/v1/batches/${batch.id}`;
    expect((await call("get", "/v1/batches", "/v1/batches?limit=2")).data[0].id).toBe(batch.id);
    expect((await call("get", "/v1/batches/{id}", bpath)).id).toBe(batch.id);
    // Cancel is valid in any state; a batch already finished answers with its final status.
    expect((await call("post", "/v1/batches/{id}/cancel", `${bpath}/cancel`)).id).toBe(batch.id);
    expect((await call("delete", "/v1/files/{id}", fpath)).deleted).toBe(true);
  });

  it("batch jobs (Mistral's shape): create, list, get, cancel", async () => {
    const job = await call("post", "/v1/batch/jobs", "/v1/batch/jobs", {
      body: {
        requests: [{ custom_id: "m", body: chatBody() }],
        endpoint: "/v1/chat/completions",
        model: "mistral-tiny",
      },
    });
    expect(job.status).toBe("QUEUED");
    const jpath = `/v1/batch/jobs/${job.id}`;
    expect((await call("get", "/v1/batch/jobs", "/v1/batch/jobs?page_size=1")).data[0].id).toBe(job.id);
    expect((await call("get", "/v1/batch/jobs/{job_id}", jpath)).id).toBe(job.id);
    expect((await call("post", "/v1/batch/jobs/{job_id}/cancel", `${jpath}/cancel`)).id).toBe(job.id);
  });

  it("admin: live replicas and refused usage reports", async () => {
    const admin = { auth: "admin" as const };
    expect(Array.isArray((await call("get", "/v1/admin/replicas", "/v1/admin/replicas", admin)).data)).toBe(true);
    await call("get", "/v1/admin/usage/rejected-reports", "/v1/admin/usage/rejected-reports", admin);
  });

  it("every documented operation had a real response validated above", () => {
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`));
    expect(documented.filter((op) => !exercised.has(op))).toEqual([]);
  });
});
