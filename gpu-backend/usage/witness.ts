/**
 * The backend as a second witness of usage (issue 14): the server hands it one final record per
 * request; it journals the record (durable before the caller acknowledges the stream's end) and, when a
 * usage URL is configured, delivers it to the worker.
 */
import { randomBytes } from "node:crypto";
import { UsageRecordSchema, type UsageRecord } from "../../contract/usage";
import { UsageDelivery, type DeliveryOptions } from "./delivery";
import { Journal } from "./journal";
import { RecentRequests } from "./recent";

export type UsageInput = Omit<UsageRecord, "id" | "backend">;

/** What the HTTP layer needs: record() resolves once the record is durable. */
export interface UsageSink {
  record(r: UsageInput): Promise<void>;
  stats(): { pending: number; segments: number };
  /** Final records of recent requests (POST /v1/usage/status). */
  readonly recent: RecentRequests;
}

export interface WitnessOptions {
  dir: string;
  segmentBytes: number;
  /** Segments kept when there is no delivery URL (Journal.keepSegments). */
  keepSegments: number;
  /** Identifies this backend in records (host:port). */
  backend: string;
  delivery: Omit<DeliveryOptions, "url" | "token"> & { url: string | undefined; token: string | undefined };
  /** How many finished requests POST /v1/usage/status remembers. */
  recentCapacity: number;
}

export class UsageWitness implements UsageSink {
  /** Record ids: a random per-process prefix plus a counter, unique across restarts. */
  private readonly prefix = randomBytes(8).toString("hex");
  private n = 0;

  private constructor(
    readonly journal: Journal,
    readonly delivery: UsageDelivery | null,
    private readonly backend: string,
    readonly recent: RecentRequests,
  ) {}

  static async open(o: WitnessOptions): Promise<UsageWitness> {
    const { url, token, ...rest } = o.delivery;
    const delivering = url !== undefined && token !== undefined;
    const journal = await Journal.open({
      dir: o.dir,
      segmentBytes: o.segmentBytes,
      ...(delivering ? {} : { keepSegments: o.keepSegments }),
    });
    const delivery = delivering ? new UsageDelivery(journal, { ...rest, url, token }) : null;
    delivery?.start();
    const recent = new RecentRequests(o.recentCapacity, Date.now());
    // Replayed records are known too (they may predate `since`, which only bounds "unknown").
    for (const rec of journal.pending(o.recentCapacity)) recent.add(rec);
    return new UsageWitness(journal, delivery, o.backend, recent);
  }

  record(r: UsageInput): Promise<void> {
    // Validated on the way in, because replay validates on the way out and would skip a bad line.
    const parsed = UsageRecordSchema.safeParse({ ...r, id: `${this.prefix}-${++this.n}`, backend: this.backend });
    if (!parsed.success) return Promise.reject(new Error(`invalid usage record: ${parsed.error.issues[0]?.message}`));
    // Known at once, before the fsync: between the engine's end and the journal there is no gap in
    // which the request would read as "unknown".
    this.recent.add(parsed.data);
    return this.journal.append(parsed.data);
  }

  stats(): { pending: number; segments: number } {
    return { pending: this.journal.pendingCount, segments: this.journal.segmentNumbers().length };
  }

  /**
   * Waits until the worker has acknowledged every journaled record, or `timeoutMs` passes (delivery keeps
   * its own retries); true when none is left. A replica leaving for good (scale-down) calls this before
   * close, so its usage does not wait for a restart that never comes.
   */
  async flush(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.journal.pendingCount > 0 && this.delivery && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 25));
    return this.journal.pendingCount === 0;
  }

  async close(): Promise<void> {
    await this.delivery?.stop();
    await this.journal.close();
  }
}
