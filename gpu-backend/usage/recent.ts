/**
 * The final records of recent requests, by request id, for POST /v1/usage/status. Bounded: evicting a
 * record moves `since` past its start, so "unknown" is only ever claimed for requests accepted at or
 * after `since` (see contract/usage.ts).
 */
import type { UsageRecord } from "../../contract/usage";

export class RecentRequests {
  private readonly byId = new Map<string, UsageRecord>();

  constructor(
    private readonly capacity: number,
    /** Completeness starts when this process started accepting requests. */
    public since: number,
  ) {}

  add(rec: UsageRecord): void {
    this.byId.delete(rec.request_id); // re-insert: newest last
    this.byId.set(rec.request_id, rec);
    while (this.byId.size > this.capacity) {
      const [id, old] = this.byId.entries().next().value as [string, UsageRecord];
      this.byId.delete(id);
      this.since = Math.max(this.since, old.started_at + 1);
    }
  }

  get(requestId: string): UsageRecord | undefined {
    return this.byId.get(requestId);
  }

  get size(): number {
    return this.byId.size;
  }
}
