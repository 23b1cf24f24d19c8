/**
 * Hostile or careless API use found by probing the running stack: each case is a request a real
 * client sent, and the answer must be a clear 4xx in the OpenAI shape.
 */
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FakeBackend } from "./chat-fake-backend";
import { call, chat, newKey } from "./chat-harness";

let key: string;
let backend: FakeBackend;
beforeAll(async () => {
  key = (await newKey(["mistral-tiny", "mistral-embed"])).key;
});
beforeEach(() => {
  backend = new FakeBackend();
  backend.install();
});

describe("hostile chat bodies", () => {
  it.each([
    [{ max_tokens: "NaN" }, "max_tokens"],
    [{ max_tokens: 2.5 }, "max_tokens"],
    [{ temperature: "0" }, "temperature"],
    [{ stream: "true" }, "stream"],
    [{ model: ["mistral-tiny"] }, "model"],
    [{ messages: [null] }, "messages[0]"],
  ])("a present but wrong-typed field %j is called invalid, not missing", async (body, param) => {
    const r = await chat(key, body);
    const j = await r.json();
    expect(r.res.status).toBe(400);
    expect(j.error.param).toBe(param);
    expect(j.error.message).not.toMatch(/required/);
    expect(j.error.message).toContain("invalid");
  });

  it("a field that is really missing is still called required", async () => {
    const r = await chat(key, { model: undefined });
    expect((await r.json()).error.message).toBe("'model' is required.");
  });
});

describe("hostile usage queries", () => {
  it.each(["2026-02-30", "2025-02-29", "2026-04-31"])("from=%s, a day that does not exist, is a 400", async (d) => {
    const r = await call(`/v1/usage?from=${d}`, { key });
    expect(r.res.status).toBe(400);
    expect((await r.json()).error).toMatchObject({ param: "from", type: "invalid_request_error" });
  });

  it("a real leap day is accepted", async () => {
    expect((await call("/v1/usage?from=2028-02-29&to=2028-03-01", { key })).res.status).toBe(200);
  });
});
