/**
 * The chat template refuses a conversation with a typed TokenizerError (worker/tokenizer/errors.ts), never
 * an HTTP error; the API maps it (worker/api/template.ts) to the same 400 a client always saw, on both
 * routes that render the template: chat completions and tokenize.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { ApiError } from "../../worker/errors";
import { applyChatTemplate, type ChatMessage, TokenizerError } from "../../worker/tokenizer";
import { FakeBackend } from "./chat-fake-backend";
import { call, chat, newKey } from "./chat-harness";

let key: string;
beforeAll(async () => {
  key = (await newKey(["mistral-tiny"])).key;
});

const user = (content: string): ChatMessage => ({ role: "user", content });
const assistant = (content: string, prefix?: true): ChatMessage => ({ role: "assistant", content, prefix });
const system = (content: string): ChatMessage => ({ role: "system", content });

// Conversations the request schema lets through and the template refuses, with the exact message clients see.
const refused: Array<[string, ChatMessage[], TokenizerError["code"], string]> = [
  ["only system messages", [system("S")], "no_user_message", "messages must contain at least one user message."],
  [
    "an assistant first",
    [system("S"), assistant("A"), user("U")],
    "first_turn_not_user",
    "After system messages, the conversation must start with a user message.",
  ],
  [
    "an assistant last without prefix",
    [user("U"), assistant("A")],
    "last_turn_not_user",
    "The last message must be a user or tool message, or an assistant message with prefix: true.",
  ],
  [
    "a prefix before the last message",
    [user("U"), assistant("A", true), user("V")],
    "misplaced_prefix",
    "messages[1]: prefix is only allowed on the last message, which must be an assistant message without tool_calls.",
  ],
];

describe("chat template refusals", () => {
  it.each(refused)("%s: the tokenizer throws a TokenizerError, not an HTTP error", (_, messages, code, message) => {
    let err: unknown;
    try {
      applyChatTemplate(messages);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TokenizerError);
    expect(err).not.toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ code, message });
  });

  it.each(refused)("%s: a 400 from chat completions, the backend never called", async (_, messages, _code, message) => {
    const backend = new FakeBackend();
    backend.install();
    const r = await chat(key, { messages });
    expect(r.res.status).toBe(400);
    expect(await r.json()).toEqual({
      error: { message, type: "invalid_request_error", param: "messages", code: "invalid_request" },
    });
    expect(backend.seen).toHaveLength(0);
  });

  it.each(refused)("%s: the same 400 from /v1/tokenize", async (_, messages, _code, message) => {
    const r = await call("/v1/tokenize", {
      method: "POST",
      key,
      body: JSON.stringify({ model: "mistral-tiny", messages }),
    });
    expect(r.res.status).toBe(400);
    expect(await r.json()).toEqual({
      error: { message, type: "invalid_request_error", param: "messages", code: "invalid_request" },
    });
  });
});
