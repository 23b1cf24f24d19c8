/**
 * `usage.cost_micros` (worker/billing/money.ts unitsToMicrosCeil): the exact cost rounded up to whole
 * micro-euros, so a cost that is already a whole number of µ€ is reported as exactly that. The HTTP test
 * prices a tier in whole µ€ per token, so every request's cost is whole, in every run.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { costUnits, unitsToMicrosCeil } from "../../worker/billing/money";
import { FakeBackend } from "./chat-fake-backend";
import { chat, newKey, sseEvents, tiersJson } from "./chat-harness";

describe("unitsToMicrosCeil", () => {
  it("a whole number of µ€ stays as it is; any fraction rounds up; nothing is 0", () => {
    expect(unitsToMicrosCeil(0n)).toBe(0);
    expect(unitsToMicrosCeil(1n)).toBe(1);
    expect(unitsToMicrosCeil(999_999n)).toBe(1);
    expect(unitsToMicrosCeil(1_000_000n)).toBe(1);
    expect(unitsToMicrosCeil(1_000_001n)).toBe(2);
    expect(unitsToMicrosCeil(42_000_000n)).toBe(42);
    expect(unitsToMicrosCeil(-5n)).toBe(0);
  });
});

/** µ€ per token, as units (1e-6 µ€): 1 µ€ a prompt token, 0.1 cached, 2 a completion token. */
const WHOLE = { input: 1_000_000, cached_input: 100_000, output: 2_000_000 };
const tiers = tiersJson({
  "mistral-tiny": { backends: ["http://r1.test"], backend_model: "tiny", context_window: 256, price: WHOLE },
});

describe("usage.cost_micros over HTTP, at whole-µ€ prices", () => {
  let backend: FakeBackend;
  beforeEach(() => {
    backend = new FakeBackend();
    backend.install();
  });

  it("is the exact cost, not a micro-euro more, streaming and not", async () => {
    const { key } = await newKey();
    backend.set("r1.test", { kind: "ok", text: "exactly priced" });
    const r = await chat(key, { max_tokens: 50 }, { tiers });
    const j = await r.json();
    expect(r.res.status, JSON.stringify(j)).toBe(200);
    const u = j.usage;
    expect(u.completion_tokens).toBe("exactly priced".length);
    expect(u.cost_micros).toBe(u.prompt_tokens + 2 * u.completion_tokens);

    const s = await chat(key, { max_tokens: 50, stream: true, stream_options: { include_usage: true } }, { tiers });
    const events = sseEvents(await s.text()) as Array<{ usage?: Record<string, number> }>;
    const usage = events.findLast((e) => typeof e === "object" && e.usage)!.usage!;
    expect(usage.cost_micros).toBe(usage.prompt_tokens + 2 * usage.completion_tokens);
    expect(
      costUnits(WHOLE, {
        promptTokens: usage.prompt_tokens,
        cachedTokens: 0,
        completionTokens: usage.completion_tokens,
      }),
    ).toBe(BigInt(usage.cost_micros) * 1_000_000n);
  });
});
