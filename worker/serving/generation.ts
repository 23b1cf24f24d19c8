/**
 * Starting one chat generation on a replica: open the NDJSON stream, retrying other replicas until one
 * yields its first event. What follows (ids -> text, drain, exact count) is completion/pump.ts.
 */
import type { GenerateEvent, GenerateRequest } from "../../contract/wire";
import { BackendError, cancelGenerate, openGenerate } from "./backend";
import { dispatch, type AttemptLog, type Dispatched } from "./dispatch";
import type { ReplicaRouter } from "./router";
import type { ReplicaTimeouts } from "./timeouts";
import { nextWithin, ReplicaStalled } from "./watchdog";

export interface OpenStream {
  first: GenerateEvent;
  rest: AsyncGenerator<GenerateEvent>;
}

export interface GenerationSignals {
  /** Aborts when the client went away: no further replica is tried, and an admitted one is cancelled. */
  client: AbortSignal;
  /** Aborts the backend fetch itself: only on a drain timeout or a failure, never because the client left. */
  backend: AbortSignal;
}

/**
 * Opens a generation on the first replica that yields a non-error first event. A replica silent past
 * `timeouts` (no headers, or no first event) is a retryable failure like a refusal: its fetch is aborted
 * and it is asked to cancel (best effort: a stopped process answers nothing), then the next one is tried.
 */
export function startGeneration(
  router: ReplicaRouter,
  order: readonly string[],
  token: string | undefined,
  req: GenerateRequest,
  signals: GenerationSignals,
  failures: AttemptLog[],
  timeouts: Pick<ReplicaTimeouts, "headersMs" | "firstEventMs">,
): Promise<Dispatched<OpenStream>> {
  return dispatch(
    router,
    order,
    signals.client,
    async (replica) => {
      // This attempt's own fetch signal: giving up on a stalled replica must not abort the next one's.
      const attempt = new AbortController();
      const fetchSignal = AbortSignal.any([signals.backend, attempt.signal]);
      const events = await openGenerate(replica, token, req, fetchSignal, timeouts.headersMs);
      // Admitted: if the client leaves before the first token, cancel (don't abort) so the stream
      // still ends with the backend's usage, which is then billed like any other disconnect.
      const cancel = () => void cancelGenerate(replica, token, req.request_id);
      signals.client.addEventListener("abort", cancel, { once: true });
      if (signals.client.aborted) cancel();
      let first: IteratorResult<GenerateEvent>;
      try {
        first = await nextWithin(events, "first_event", timeouts.firstEventMs, () => {
          attempt.abort();
          cancel();
        });
      } catch (err) {
        if (err instanceof ReplicaStalled) throw new BackendError(err.message, true);
        throw err;
      } finally {
        signals.client.removeEventListener("abort", cancel);
      }
      if (first.done) throw new BackendError("generate stream ended before any event", true);
      if (first.value.type === "done" && first.value.finish_reason === "error") {
        await events.return(undefined);
        throw new BackendError(`backend failed before the first token: ${first.value.error ?? ""}`, true);
      }
      return { first: first.value, rest: events };
    },
    failures,
  );
}
