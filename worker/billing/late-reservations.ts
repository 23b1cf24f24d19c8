/**
 * Reservations whose settle is late: the KeyLimiter's alarm asks the tier's backends about them
 * (POST /v1/usage/status, contract/usage.ts) instead of releasing them on a timer.
 *   finished on a replica     -> its record is merged into the ledger, which settles the reservation
 *   running on a replica      -> kept
 *   unknown on every replica, each answering with since <= the admission
 *                              -> the backends never saw it: released, nothing charged
 *   otherwise (a replica down, or restarted after the admission: its "unknown" proves nothing)
 *                              -> kept and asked again at the next alarm; after GIVE_UP_MS released and
 *                                 logged as an error (both witnesses lost: the worker and the backend died
 *                                 mid-request)
 */
import { BACKEND_AUTH_HEADER, WIRE_VERSION, WIRE_VERSION_HEADER } from "../../contract/wire";
import type { RequestState, UsageRecord, UsageStatusRequest } from "../../contract/usage";
import type { Env } from "../env";
import { getTiers } from "../config/tiers";
import { mergeReports, stubPort, type LimiterPort } from "./report-merge";
import { BACKEND_PATHS } from "../../contract/routes";

/** A reservation is asked about once it is this old (a generation normally settles well within it). */
export const ASK_AFTER_MS = 5 * 60_000;
export const GIVE_UP_MS = 24 * 3600_000;
const STATUS_TIMEOUT_MS = 5_000;

export type Reservation = {
  request_id: string;
  tier: string;
  created_ms: number;
};

/**
 * What the alarm needs of the KeyLimiter it runs in. Structural, so that usage/ does not import the class
 * (whose module imports this one for the alarm).
 */
export interface ReservationHolder extends LimiterPort {
  keyId(): string | null;
  release(requestId: string): void;
}

interface Answer {
  since: number;
  requests: Record<string, RequestState>;
}

async function askReplica(env: Env, base: string, ids: string[]): Promise<Answer | null> {
  const body: UsageStatusRequest = { request_ids: ids };
  const headers: Record<string, string> = {
    "content-type": "application/json",
    [WIRE_VERSION_HEADER]: String(WIRE_VERSION),
  };
  if (env.BACKEND_TOKEN) headers[BACKEND_AUTH_HEADER] = `Bearer ${env.BACKEND_TOKEN}`;
  try {
    const res = await fetch(`${base}${BACKEND_PATHS.usageStatus}`, {
      method: "POST",
      headers,
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(STATUS_TIMEOUT_MS),
    });
    if (!res.ok) return null;
    const a = (await res.json()) as Answer;
    return typeof a.since === "number" && typeof a.requests === "object" && a.requests !== null ? a : null;
  } catch {
    return null;
  }
}

export async function checkReservations(
  env: Env,
  limiter: ReservationHolder,
  reservations: Reservation[],
  now: number,
): Promise<void> {
  const due = reservations.filter((r) => r.created_ms <= now - ASK_AFTER_MS);
  if (due.length === 0) return;
  let tiers: ReturnType<typeof getTiers> | null = null;
  try {
    tiers = getTiers(env.TIERS);
  } catch {
    /* no replicas to ask: only the give-up applies */
  }
  const finished: UsageRecord[] = [];
  const byTier = new Map<string, Reservation[]>();
  for (const r of due) byTier.set(r.tier, [...(byTier.get(r.tier) ?? []), r]);
  for (const [tierName, list] of byTier) {
    const replicas = tiers?.get(tierName)?.backends ?? [];
    for (let i = 0; i < list.length; i += 100) {
      const chunk = list.slice(i, i + 100);
      const answers = await Promise.all(
        replicas.map((b) =>
          askReplica(
            env,
            b,
            chunk.map((r) => r.request_id),
          ),
        ),
      );
      for (const r of chunk) {
        const states = answers.map((a) => a?.requests[r.request_id]);
        const done = states.find((s) => s?.state === "finished");
        if (done?.state === "finished") finished.push(done.record);
        else if (states.some((s) => s?.state === "running")) continue;
        else if (
          replicas.length > 0 &&
          answers.every((a) => a !== null && a.since <= r.created_ms && a.requests[r.request_id]?.state === "unknown")
        ) {
          limiter.release(r.request_id);
          console.log(
            JSON.stringify({
              level: "info",
              where: "reservation",
              request_id: r.request_id,
              msg: "released: no backend saw the request",
            }),
          );
        } else if (r.created_ms <= now - GIVE_UP_MS) {
          limiter.release(r.request_id);
          console.error(
            JSON.stringify({
              level: "error",
              where: "reservation",
              request_id: r.request_id,
              msg: "released unbilled after 24 h: no backend could report it",
            }),
          );
        }
      }
    }
  }
  if (finished.length === 0) return;
  const own = limiter.keyId();
  const stubs = stubPort(env);
  // This object merges its own reports without a round trip to itself.
  const port = (keyId: string): LimiterPort => (keyId === own ? limiter : stubs(keyId));
  await mergeReports(env, finished, port).catch((err: unknown) =>
    console.error(JSON.stringify({ level: "error", where: "reservation_merge", error: String(err) })),
  );
}
