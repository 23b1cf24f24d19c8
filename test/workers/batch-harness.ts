/**
 * Batch API helpers for workers tests: uploads through the real route (R2 + D1 in miniflare), batch
 * lines, and a consumer driver that runs the batch queue's messages by hand (a capturing queue in place
 * of BATCH_QUEUE), so each step of a batch is a test's own event, not a wait on the queue's timers.
 */
import { SELF, createMessageBatch, env } from "cloudflare:test";
import worker from "../../worker/index";
import { consumeBatch } from "../../worker/batch/consumer";
import type { BatchMessage } from "../../worker/batch/messages";
import type { Env } from "../../worker/env";
import { tiersJson } from "./chat-harness";

export const url = (p: string) => `https://edge.test/v1${p}`;
export const auth = (key: string) => ({ authorization: `Bearer ${key}` });

export async function upload(key: string, text: string, purpose = "batch", filename = "in.jsonl"): Promise<Response> {
  const form = new FormData();
  form.append("purpose", purpose);
  form.append("file", new File([text], filename, { type: "application/jsonl" }));
  return SELF.fetch(url("/files"), { method: "POST", headers: auth(key), body: form });
}

export const chatLine = (id: string, extra: Record<string, unknown> = {}, model = "mistral-tiny") =>
  JSON.stringify({
    custom_id: id,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model, messages: [{ role: "user", content: "Hi" }], max_tokens: 4, temperature: 0, ...extra },
  });

/** BATCH_QUEUE's messages, captured instead of sent, and run by `drain`. */
export class QueueDriver {
  readonly pending: { body: BatchMessage; delaySeconds?: number }[] = [];
  private n = 0;
  readonly env: Env;

  constructor(tiers = tiersJson()) {
    const queue = {
      send: async (body: BatchMessage, o?: { delaySeconds?: number }) => {
        this.pending.push({ body, delaySeconds: o?.delaySeconds });
      },
      sendBatch: async (msgs: { body: BatchMessage }[]) => {
        for (const m of msgs) this.pending.push({ body: m.body });
      },
    } as unknown as Queue;
    this.env = { ...env, TIERS: tiers, BATCH_QUEUE: queue };
  }

  /** Runs up to `max` queued messages as one delivery (attempt 1); returns how many ran. */
  async step(max = 8): Promise<number> {
    const taken = this.pending.splice(0, max);
    if (taken.length === 0) return 0;
    const batch = createMessageBatch<unknown>(
      "moe-edge-batch",
      taken.map((m) => ({ id: `m${this.n++}`, timestamp: new Date(), attempts: 1, body: m.body })),
    );
    await consumeBatch(batch, this.env, (req, e, ctx) => worker.fetch(req, e, ctx));
    return taken.length;
  }

  /** Runs messages until none is left. */
  async drain(): Promise<void> {
    while ((await this.step()) > 0) {}
  }
}

/** POST through the app with the driver's env (its TIERS and its capturing queue). */
export async function post(driver: QueueDriver, key: string, path: string, body: unknown): Promise<Response> {
  const ctx = { waitUntil: () => {}, passThroughOnException: () => {}, props: {} } as unknown as ExecutionContext;
  return worker.fetch(
    new Request(url(path), {
      method: "POST",
      headers: { ...auth(key), "content-type": "application/json" },
      body: JSON.stringify(body),
    }),
    driver.env,
    ctx,
  );
}

/** GET through the app with the driver's env (a re-queue it triggers lands in the driver). */
export async function getWith(driver: QueueDriver, key: string, path: string): Promise<Response> {
  const ctx = { waitUntil: () => {}, passThroughOnException: () => {}, props: {} } as unknown as ExecutionContext;
  return worker.fetch(new Request(url(path), { headers: auth(key) }), driver.env, ctx);
}

export async function get(key: string, path: string): Promise<Response> {
  return SELF.fetch(url(path), { headers: auth(key) });
}
