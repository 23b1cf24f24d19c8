/**
 * One chat generation against the backend: open the NDJSON stream on a replica (retrying others
 * until the first event arrives), then relay ids -> text with stop strings applied at the edge.
 *
 * Token accounting (what billing uses): completion_tokens = every id the edge received from the
 * backend, including EOS and ids that arrived after a stop string matched (they were generated).
 * Ids the backend may still produce after we abort are never seen and never billed.
 */
import type { GenerateEvent, GenerateRequest } from "../../contract/wire";
import { EOS_ID, createDetokenizer, type StopMatcher } from "../tokenizer";
import { openGenerate, BackendError } from "./backend";
import { dispatch, type AttemptLog, type Dispatched } from "./dispatch";
import type { ReplicaRouter } from "./router";

export type EdgeFinishReason = "stop" | "length" | "error" | "cancelled";

export interface OpenStream {
  first: GenerateEvent;
  rest: AsyncGenerator<GenerateEvent>;
}

/** Opens a generation on the first replica that yields a non-error first event. */
export function startGeneration(
  router: ReplicaRouter,
  order: readonly string[],
  token: string | undefined,
  req: GenerateRequest,
  signal: AbortSignal,
  failures: AttemptLog[],
): Promise<Dispatched<OpenStream>> {
  return dispatch(
    router,
    order,
    signal,
    async (replica) => {
      const events = await openGenerate(replica, token, req, signal);
      const first = await events.next();
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

export interface PumpOptions {
  matcher: StopMatcher;
  /** Delivers text to the client; false when the client is gone. */
  onText: (text: string) => boolean;
  /** Aborts the backend request (closing its connection stops generation within a step). */
  abortBackend: () => void;
  /** True once the client disconnected. */
  clientGone: () => boolean;
  startedAt: number;
}

export interface PumpResult {
  finishReason: EdgeFinishReason;
  completionTokens: number;
  cachedTokens: number;
  ttftMs: number | null;
  /** Internal detail when finishReason is "error" (logged, never sent). */
  error?: string;
  /** The backend itself failed (counts against the replica's health). */
  backendFailed: boolean;
}

export async function pumpGeneration(open: OpenStream, opts: PumpOptions): Promise<PumpResult> {
  const detok = createDetokenizer();
  const r: PumpResult = { finishReason: "error", completionTokens: 0, cachedTokens: 0, ttftMs: null, backendFailed: false };
  let ended = false;

  const emit = (text: string): boolean => {
    if (!text) return true;
    if (r.ttftMs === null) r.ttftMs = Date.now() - opts.startedAt;
    return opts.onText(text);
  };

  const handle = (ev: GenerateEvent): boolean => {
    if (ev.type === "tokens") {
      for (let i = 0; i < ev.ids.length; i++) {
        r.completionTokens++;
        const id = ev.ids[i];
        if (id === EOS_ID) continue;
        const out = opts.matcher.push(detok.push(id));
        const delivered = emit(out.text);
        if (out.stop !== null) {
          // The rest of this batch was generated too: bill it (see module doc).
          r.completionTokens += ev.ids.length - 1 - i;
          r.finishReason = "stop";
          return true;
        }
        if (!delivered) {
          r.finishReason = "cancelled";
          return true;
        }
      }
      return false;
    }
    r.cachedTokens = ev.usage.cached_tokens;
    if (ev.finish_reason === "error") {
      r.finishReason = "error";
      r.error = `backend error: ${ev.error ?? "unknown"}`;
      r.backendFailed = true;
    } else {
      // Remaining text the detokenizer and matcher held back (no stop string completed).
      const tail = opts.matcher.push(detok.flush());
      const delivered = emit(tail.text + (tail.stop !== null ? "" : opts.matcher.flush()));
      // "model_length" (the backend's context was reached) is reported as "length" to clients.
      r.finishReason = !delivered ? "cancelled" : tail.stop !== null ? "stop" : ev.finish_reason === "stop" ? "stop" : ev.finish_reason === "cancelled" ? "cancelled" : "length";
    }
    ended = true;
    return true;
  };

  try {
    let finished = handle(open.first);
    while (!finished) {
      if (opts.clientGone()) {
        r.finishReason = "cancelled";
        break;
      }
      const next = await open.rest.next();
      if (next.done) break;
      finished = handle(next.value);
    }
    if (!finished && r.finishReason !== "cancelled") {
      r.finishReason = "error";
      r.error = "generate stream ended without a done event";
      r.backendFailed = true;
    }
  } catch (err) {
    if (opts.clientGone()) r.finishReason = "cancelled";
    else {
      r.finishReason = "error";
      r.error = err instanceof Error ? err.message : String(err);
      r.backendFailed = true;
    }
  } finally {
    if (!ended) opts.abortBackend();
    await open.rest.return(undefined).catch(() => {});
  }
  return r;
}
