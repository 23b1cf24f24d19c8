/**
 * Hostile or careless API use found by probing the running stack: each case is a request a real
 * client sent, and the answer must be a clear 4xx in the OpenAI shape.
 */
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FakeBackend } from "./chat-fake-backend";
import { chat, newKey } from "./chat-harness";

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
