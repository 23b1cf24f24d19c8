/** Known OpenAI/Mistral endpoints this API does not serve: 404 not_supported naming them; others stay "Unknown endpoint". */
import { SELF } from "cloudflare:test";
import OpenAI from "openai";
import { describe, expect, it } from "vitest";

const BASE = "https://edge.test";

type ErrBody = { error: { message: string; type: string; code: string | null; param: string | null } };

describe("unsupported endpoints", () => {
  it.each([
    ["POST", "/v1/completions", "Use POST /v1/chat/completions instead"],
    ["POST", "/v1/fim/completions", "fill-in-the-middle"],
    ["POST", "/v1/moderations", "moderation"],
    ["POST", "/v1/chat/moderations", "moderation"],
    ["POST", "/v1/audio/transcriptions", "audio"],
    ["POST", "/v1/audio/speech", "audio"],
    ["POST", "/v1/images/generations", "image generation"],
    ["POST", "/v1/agents/completions", "agents"],
    ["GET", "/v1/assistants", "assistants"],
    ["POST", "/v1/responses", "Responses API"],
    ["POST", "/v1/ocr", "OCR"],
  ])("%s %s -> 404 not_supported naming it, with a link to the docs", async (method, path, what) => {
    const res = await SELF.fetch(`${BASE}${path}`, {
      method,
      headers: { authorization: "Bearer sk-whatever", "content-type": "application/json" },
      ...(method === "POST" ? { body: "{}" } : {}),
    });
    expect(res.status).toBe(404);
    const body = (await res.json()) as ErrBody;
    expect(body.error.type).toBe("not_supported");
    expect(body.error.code).toBe("endpoint_not_supported");
    expect(body.error.message).toContain(`${method} ${path}`);
    expect(body.error.message).toContain(what);
    expect(body.error.message).toContain(`${BASE}/openapi.json`);
    expect(body.error.message).toContain("docs/api.md#unsupported-endpoints");
  });

  it("truly unknown paths keep 'Unknown endpoint'; served endpoints are untouched", async () => {
    for (const path of ["/v1/nonsense", "/v1/chat/whatever", "/nope"]) {
      const res = await SELF.fetch(`${BASE}${path}`, { method: "POST", body: "{}" });
      expect(res.status, path).toBe(404);
      const body = (await res.json()) as ErrBody;
      expect(body.error.message).toBe("Unknown endpoint.");
      expect(body.error.type).toBe("not_found_error");
    }
    // A served route still needs its key.
    expect((await SELF.fetch(`${BASE}/v1/chat/completions`, { method: "POST", body: "{}" })).status).toBe(401);
  });

  it("the openai SDK surfaces it as a NotFoundError carrying the message", async () => {
    const client = new OpenAI({
      apiKey: "sk-x",
      baseURL: `${BASE}/v1`,
      maxRetries: 0,
      fetch: (input, init) => SELF.fetch(input as RequestInfo, init as RequestInit),
    });
    const err = await client.completions.create({ model: "mistral-tiny", prompt: "hi", max_tokens: 4 }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect((err as InstanceType<typeof OpenAI.NotFoundError>).message).toContain("POST /v1/completions");
    expect((err as { type?: string }).type).toBe("not_supported");
  });
});
