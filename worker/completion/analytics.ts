/**
 * One Workers Analytics Engine data point per metered request, written where its request log line is
 * (Lifecycle.finish), for dashboards and SQL after deploy (README "Querying usage analytics after deploy").
 * The positions below are the dataset's schema; the README's queries read them by these names:
 *
 *   index1  key id (the sampling key: each key's requests are sampled together)
 *   blob1   tier (the public model name; "(unknown)" for a name outside the key's plan)
 *   blob2   endpoint ("chat" | "embeddings")
 *   blob3   HTTP status as text ("200", "429", "499", ...)
 *   blob4   response cache ("HIT" | "MISS" | "BYPASS" | "")
 *   double1 HTTP status
 *   double2 prompt tokens, double3 cached tokens, double4 completion tokens (as billed)
 *   double5 cost in integer micro-euros (usage.cost_micros: the exact cost rounded up)
 *   double6 latency in ms, double7 time to first token in ms (-1 when none)
 *
 * Analytics Engine stores numbers as doubles: integers are exact below 2^53, so one request's cost is
 * exact, but the dataset is sampled at volume, so sums read from it are estimates (weight rows by
 * _sample_interval). The ledger (D1) stays the record for money.
 */

export interface RequestPoint {
  keyId: string;
  tier: string;
  endpoint: string;
  status: number;
  cache: string;
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  costMicros: number;
  latencyMs: number;
  ttftMs: number | null;
}

/** The point in the dataset's positional schema (above). */
export function dataPoint(p: RequestPoint): AnalyticsEngineDataPoint {
  return {
    indexes: [p.keyId],
    blobs: [p.tier, p.endpoint, String(p.status), p.cache],
    doubles: [p.status, p.promptTokens, p.cachedTokens, p.completionTokens, p.costMicros, p.latencyMs, p.ttftMs ?? -1],
  };
}

/**
 * Writes the point; never throws into the request path. No binding (tests, a deploy without the
 * dataset) is a no-op; a failing write is logged once per request and otherwise ignored.
 */
export function writeRequestPoint(dataset: AnalyticsEngineDataset | undefined, p: RequestPoint): void {
  if (!dataset) return;
  try {
    dataset.writeDataPoint(dataPoint(p));
  } catch (err) {
    console.error(JSON.stringify({ level: "error", msg: "analytics write failed", error: String(err) }));
  }
}
