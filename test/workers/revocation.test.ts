/**
 * Revoking a key ends its streams in flight within REVOCATION_POLL.ms (2 s) plus a drain,
 * with an error event that says why, and the answer is billed exactly (the replica's own count).
 */
import { env } from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { REVOCATION_POLL } from "../../worker/completion/chat";
import { FakeBackend, gate } from "./chat-fake-backend";
import { chat, newKey, sseEvents, usageRecord } from "./chat-harness";

let backend: FakeBackend;
const saved = REVOCATION_POLL.ms;
beforeEach(() => {
  backend = new FakeBackend();
  backend.install();
  REVOCATION_POLL.ms = 20;
});
afterEach(() => void (REVOCATION_POLL.ms = saved));

describe("revocation of a key with a stream in flight", () => {
  it("the stream ends with a key_revoked error event, the replica is cancelled, and the tokens it made are billed", async () => {
    const { key, id: keyId } = await newKey();
    // The replica holds after 6 tokens until it is cancelled: only the revocation can end this answer.
    const g = gate(6);
    for (const h of ["r1.test", "r2.test", "r3.test"])
      backend.set(h, { kind: "ok", text: "z".repeat(200), chunk: 2, lag: 2, gate: g });
    void backend.nextCancel().then(g.release);
    const r = await chat(key, { stream: true });
    expect(r.res.status).toBe(200);
    // Revoked in D1, as another isolate's admin call would (this isolate's key cache is not involved).
    await env.DB.prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ?").bind(Date.now(), keyId).run();
    const events = sseEvents(await r.text());
    const id = r.res.headers.get("x-request-id")!;
    const last = events.at(-1) as { error?: { type: string; code: string } };
    expect(last.error).toMatchObject({ type: "authentication_error", code: "key_revoked" });
    expect(events).not.toContain("[DONE]");
    expect(backend.cancels).toEqual([id]);
    const truth = backend.finished.get(id)!;
    expect(truth.finish).toBe("cancelled");
    expect(await usageRecord(id)).toMatchObject({ status: "cancelled", completion_tokens: truth.completion });
    expect(truth.completion).toBeGreaterThanOrEqual(6);
  });
});
