/**
 * Delivers the journal's pending records to the worker (contract/usage.ts), in batches, oldest first,
 * until each is acknowledged. A failed POST, a non-200, a bad body or an id left out of `acked` backs off
 * exponentially with jitter and retries; there is no give-up (the journal keeps the records meanwhile).
 */
import { EventEmitter } from "node:events";
import { UsageAckSchema, type UsageBatch } from "../../contract/usage";
import type { Journal } from "./journal";

export interface DeliveryOptions {
  url: string;
  token: string;
  batch: number;
  retryBaseMs: number;
  retryMaxMs: number;
  /** Injectable for tests. */
  fetch?: typeof fetch;
  random?: () => number;
  /** Per-POST timeout. */
  timeoutMs?: number;
}

/**
 * Delay before retry number `attempt` (1-based): base·2^(attempt−1) capped at max, then "equal jitter"
 * (a uniform draw in [d/2, d]) so many backends that failed together do not retry in lockstep.
 */
export function backoffMs(attempt: number, base: number, max: number, random: () => number): number {
  const d = Math.min(max, base * 2 ** Math.min(attempt - 1, 30));
  return Math.round(d / 2 + (random() * d) / 2);
}

export class UsageDelivery extends EventEmitter<{
  delivered: [string[]];
  retry: [{ attempt: number; delayMs: number; error: string }];
}> {
  private stopped = true;
  /** Aborts the POST in flight when stop() is called. */
  private halt = new AbortController();
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private readonly onAppend = () => this.wake?.();

  constructor(
    private readonly journal: Journal,
    private readonly opts: DeliveryOptions,
  ) {
    super();
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.halt = new AbortController();
    this.journal.on("append", this.onAppend);
    this.loop = this.run();
  }

  /** Stops now: a POST in flight is aborted (its records stay pending and are replayed later). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.halt.abort();
    this.journal.off("append", this.onAppend);
    this.wake?.();
    await this.loop;
  }

  /** Waits for new records, a backoff delay to pass, or stop(), whichever comes first. */
  private pause(ms: number | null): Promise<void> {
    return new Promise((resolve) => {
      if (this.stopped) return resolve();
      const timer = ms === null ? undefined : setTimeout(() => done(), ms);
      const done = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      this.wake = ms === null ? done : () => this.stopped && done();
    });
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      const batch = this.journal.pending(this.opts.batch);
      if (batch.length === 0) {
        await this.pause(null);
        continue;
      }
      try {
        const acked = await this.post({ records: batch });
        const want = new Set(batch.map((r) => r.id));
        const ours = acked.filter((id) => want.has(id));
        if (ours.length > 0) {
          await this.journal.ack(ours);
          this.emit("delivered", ours);
        }
        if (ours.length < batch.length)
          throw new Error(`${batch.length - ours.length} of ${batch.length} records not acknowledged`);
        attempt = 0;
      } catch (e) {
        if (this.stopped) break;
        attempt++;
        const delayMs = backoffMs(
          attempt,
          this.opts.retryBaseMs,
          this.opts.retryMaxMs,
          this.opts.random ?? Math.random,
        );
        const error = (e as Error).message;
        console.error(
          `usage delivery: attempt ${attempt} failed (${error}); ${this.journal.pendingCount} pending; retry in ${delayMs} ms`,
        );
        this.emit("retry", { attempt, delayMs, error });
        await this.pause(delayMs);
      }
    }
  }

  private async post(body: UsageBatch): Promise<string[]> {
    const f = this.opts.fetch ?? fetch;
    const res = await f(this.opts.url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${this.opts.token}` },
      body: JSON.stringify(body),
      signal: AbortSignal.any([this.halt.signal, AbortSignal.timeout(this.opts.timeoutMs ?? 30_000)]),
    });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new Error("ack body is not JSON");
    }
    const parsed = UsageAckSchema.safeParse(json);
    if (!parsed.success) throw new Error("ack body is not {acked: [ids]}");
    return parsed.data.acked;
  }
}
