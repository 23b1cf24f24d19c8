/**
 * Runs one batch line through the app itself (the consumer passes the app's fetch in: batch/ never imports
 * app.ts), so a line takes exactly an interactive request's path: the same validation, KeyLimiter
 * admission, replica dispatch, relay and settle, and the same error bodies. What differs is set by the
 * line's registration (line-request.ts): its ledger id, its account, the batch price and priority "batch".
 *
 * The line is done only when everything the request left under waitUntil has finished, its settle above
 * all, so a line recorded as done is a line billed.
 */
import type { Env } from "../env";
import type { Account } from "../billing/types";
import { lineRequest } from "./line-request";
import type { LineMessage } from "./messages";
import { notRunLine, responseLine } from "./results";
import type { BatchEndpoint } from "../../contract/api-batch";
import { type Outcome, lineRequestId } from "./store";

export type AppFetch = (req: Request, env: Env, ctx: ExecutionContext) => Response | Promise<Response>;

export type LineResult =
  | { kind: "recorded"; outcome: Outcome; result: string }
  /** Refused for a reason time cures (rate limits, in-flight reservations, the limiter unreachable). */
  | { kind: "retry"; delaySeconds: number };

/** Not a real host: the request never leaves the isolate. */
const ORIGIN = "https://batch.internal";

const retryDelay = (res: Response): number | null => {
  const ms = Number(res.headers.get("retry-after-ms"));
  if (Number.isFinite(ms) && ms > 0) return Math.ceil(ms / 1000);
  const s = Number(res.headers.get("retry-after"));
  return Number.isFinite(s) && s > 0 ? Math.ceil(s) : null;
};

/** Waits for every waitUntil promise, including ones added while waiting. */
async function drain(pending: Promise<unknown>[]): Promise<void> {
  for (let done = 0; done < pending.length; ) {
    const n = pending.length;
    await Promise.allSettled(pending.slice(done, n));
    done = n;
  }
}

export async function runLine(
  appFetch: AppFetch,
  env: Env,
  account: Account,
  batch: { id: string; endpoint: BatchEndpoint },
  msg: LineMessage,
  signal: AbortSignal,
): Promise<LineResult> {
  const requestId = lineRequestId(batch.id, msg.line);
  const pending: Promise<unknown>[] = [];
  const ctx = {
    waitUntil: (p: Promise<unknown>) => void pending.push(p),
    passThroughOnException: () => {},
    props: {},
  } as unknown as ExecutionContext;
  const req = lineRequest(
    `${ORIGIN}${batch.endpoint}`,
    msg.body,
    { account, requestId, batchId: batch.id, line: msg.line },
    signal,
  );
  const res = await appFetch(req, env, ctx);
  const text = await res.text();
  await drain(pending);

  let body: unknown = null;
  try {
    body = text.trim() === "" ? null : JSON.parse(text);
  } catch {
    body = null;
  }
  const code = (body as { error?: { code?: unknown } } | null)?.error?.code;

  const cancelled = () =>
    notRunLine(
      msg.customId,
      "batch_cancelled",
      "The batch was cancelled while this line ran; what it generated is billed.",
    );
  if (res.status === 499 || (signal.aborted && body === null))
    return { kind: "recorded", outcome: "failed", result: cancelled() };
  if (res.status >= 200 && res.status < 300) {
    if (body === null)
      return {
        kind: "recorded",
        outcome: "failed",
        result: notRunLine(msg.customId, "line_failed", "The answer was cut off."),
      };
    return { kind: "recorded", outcome: "completed", result: responseLine(msg.customId, res.status, requestId, body) };
  }
  const delay = retryDelay(res);
  const timeCures =
    (res.status === 429 && code !== "request_too_large" && delay !== null) ||
    (res.status === 503 && code === "limiter_unavailable");
  if (timeCures) return { kind: "retry", delaySeconds: Math.min(delay ?? 5, 300) };
  return { kind: "recorded", outcome: "failed", result: responseLine(msg.customId, res.status, requestId, body) };
}
