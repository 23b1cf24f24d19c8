/**
 * The key holder's console tests' fixture: the run's shared stack, a Chromium, and a key of the suite's own
 * (plus helpers to make more keys and send chats). Registers the suite's beforeAll/afterAll.
 */
import { afterAll, beforeAll, expect } from "vitest";
import { launchBrowser, type Browser } from "./browser";
import { type Stack, useSharedStack } from "./stack";

export interface UserConsole {
  stack: Stack;
  browser: Browser;
  /** The suite's own key (mistral-tiny and mistral-small). */
  key: string;
  newKey(plan: Record<string, unknown>): Promise<string>;
  chat(key: string, model: string): Promise<Response>;
}

/** Call inside a describe: the fields are set once its beforeAll has run. */
export function useUserConsole(name: string): UserConsole {
  const ctx = {} as UserConsole;
  ctx.newKey = async (plan) => {
    const res = await ctx.stack.admin("/v1/admin/keys", {
      method: "POST",
      body: JSON.stringify({
        tiers: ["mistral-tiny", "mistral-small"],
        rpm: 600,
        tpm: 1_000_000,
        monthly_budget_micros: 50_000_000,
        ...plan,
      }),
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { key: string }).key;
  };
  ctx.chat = (k, model) =>
    fetch(`${ctx.stack.base}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${k}`, "content-type": "application/json" },
      body: JSON.stringify({
        model,
        messages: [{ role: "user", content: "Hello there" }],
        max_tokens: 5,
        temperature: 0,
      }),
    });
  beforeAll(async () => {
    [ctx.stack, ctx.browser] = await Promise.all([useSharedStack(), launchBrowser()]);
    ctx.key = await ctx.newKey({ name });
  });
  afterAll(async () => {
    await ctx.browser?.close();
    await ctx.stack?.stop();
  });
  return ctx;
}
