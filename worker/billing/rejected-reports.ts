/**
 * Usage reports refused because their request id was never admitted by this worker (billing/report-merge.ts):
 * each is logged, and kept once per report id in D1 (migration 0005) so operators see a count and the
 * latest ones (GET /v1/admin/usage/rejected-reports). The only module that runs this table's SQL.
 */
import type { RejectedUsageReport, RejectedUsageReports } from "../../contract/api-accounts";
import type { UsageRecord as Report } from "../../contract/usage";

export const NEVER_ADMITTED = "request id never admitted by this worker";

/** Logs each refused report and stores it once (a redelivery of the same report id is not counted again). */
export async function recordRejectedReports(db: D1Database, reports: Report[], now = Date.now()): Promise<void> {
  if (reports.length === 0) return;
  for (const r of reports)
    console.error(
      JSON.stringify({
        level: "error",
        where: "usage_report_rejected",
        reason: NEVER_ADMITTED,
        report_id: r.id,
        request_id: r.request_id,
        key_id: r.key_id,
        tier: r.tier,
        backend: r.backend,
        completion_tokens: r.completion_tokens,
      }),
    );
  await db.batch(
    reports.map((r) =>
      db
        .prepare(
          `INSERT OR IGNORE INTO rejected_usage_reports
             (report_id, request_id, key_id, tier, backend, prompt_tokens, completion_tokens, reason, received_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .bind(
          r.id,
          r.request_id,
          r.key_id,
          r.tier,
          r.backend,
          r.prompt_tokens,
          r.completion_tokens,
          NEVER_ADMITTED,
          now,
        ),
    ),
  );
}

/** The count of refused reports, and the latest `limit` of them, newest first. */
export async function rejectedReports(db: D1Database, limit: number): Promise<Omit<RejectedUsageReports, "object">> {
  const [count, latest] = await db.batch([
    db.prepare("SELECT COUNT(*) AS n FROM rejected_usage_reports"),
    db.prepare("SELECT * FROM rejected_usage_reports ORDER BY received_at DESC LIMIT ?").bind(limit),
  ]);
  return {
    count: (count!.results[0] as { n: number }).n,
    data: latest!.results as unknown as RejectedUsageReport[],
  };
}
