/**
 * Relaying one started generation: ids -> text, with stop strings applied at the edge.
 *
 * Token accounting (what billing uses) is exact, by cancel-and-drain: when a stop string matches or the
 * client goes, the edge stops delivering, asks the replica to stop (POST /v1/cancel) and keeps READING
 * the stream until the backend's `done` event, whose usage.completion_tokens (every token generated
 * until the backend stopped) is what is billed. Only when no `done` arrives (backend crash, or the drain
 * deadline passed and the fetch was aborted) do we fall back to the ids received. The backend never
 * streams its stop token (EOS) nor counts it; should one arrive, it is neither text nor billed.
 */
import type { GenerateEvent, TokenLogprob } from "../../contract/wire";
import type { OpenStream } from "../serving/generation";
import { nextWithin } from "../serving/watchdog";
import { EOS_ID, createDetokenizer, type StopMatcher } from "../tokenizer";
import type { LogprobContent } from "../../contract/api-chat";
import { LogprobTracker } from "./logprobs";

export type { OpenStream } from "../serving/generation";

export type EdgeFinishReason = "stop" | "length" | "error" | "cancelled";

type DoneEvent = Extract<GenerateEvent, { type: "done" }>;

/** After asking a replica to cancel, how long we wait for its `done` before aborting the fetch. */
export const DRAIN_TIMEOUT_MS = 10_000;

export interface PumpOptions {
  matcher: StopMatcher;
  /**
   * Delivers text to the client; false when the client is gone. With `logprobs` on, `logprobs` holds the
   * entries this text completes (logprobs.ts; it may come with "" text, e.g. for a split UTF-8 character).
   */
  onText: (text: string, logprobs?: LogprobContent[]) => boolean;
  /** Line up the backend's per-token logprobs with the text (the request asked for them). */
  logprobs?: boolean;
  /** Aborts when the client disconnected. */
  clientSignal: AbortSignal;
  /** Asks the replica to stop this generation (POST /v1/cancel); never rejects. */
  cancelBackend: () => Promise<unknown>;
  /** Aborts the backend fetch (drain deadline passed, or the stream is abandoned without `done`). */
  abortBackend: () => void;
  /** Default DRAIN_TIMEOUT_MS. */
  drainMs?: number;
  /**
   * The longest silence between two events (ReplicaTimeouts.stallMs): past it the replica is asked to
   * cancel, its fetch is aborted and the stream ends as an error, billed what was received. Unset: none.
   * While draining, the drain deadline bounds the wait instead.
   */
  stallMs?: number;
  startedAt: number;
  /**
   * The budget's say on each generated token (billing/slices.ts): `allows` false ends the generation as
   * "length"; `stall` is a top-up to wait for before relaying more.
   */
  budget?: { allows(generated: number): boolean; stall(generated: number): Promise<void> | null };
  /** Every event from the replica (tokens or done): a sign of life, for keep-alives. */
  onEvent?: () => void;
}

export interface PumpResult {
  finishReason: EdgeFinishReason;
  /** Billed completion tokens: the backend's done.usage.completion_tokens, else the ids received. */
  completionTokens: number;
  cachedTokens: number;
  ttftMs: number | null;
  /** Internal detail (logged, never sent): the error when finishReason is "error", or a drain anomaly. */
  error?: string;
  /** The backend itself failed (counts against the replica's health). */
  backendFailed: boolean;
  /** The budget refused the next slice: finishReason is "length" and the client is told why. */
  budgetExhausted?: boolean;
}

export async function pumpGeneration(open: OpenStream, opts: PumpOptions): Promise<PumpResult> {
  const detok = createDetokenizer();
  const r: PumpResult = {
    finishReason: "error",
    completionTokens: 0,
    cachedTokens: 0,
    ttftMs: null,
    backendFailed: false,
  };
  let received = 0;
  let draining = false;
  let done: DoneEvent | null = null;
  let deadline: ReturnType<typeof setTimeout> | undefined;
  const lps = opts.logprobs ? new LogprobTracker() : null;
  let contentLength = 0;
  let stalled = false;

  /** Stop delivering; keep reading until the backend's `done` (or the deadline). */
  const drain = (reason: "stop" | "cancelled" | "length") => {
    if (draining || done) return;
    draining = true;
    r.finishReason = reason;
    void opts.cancelBackend();
    deadline = setTimeout(() => {
      r.error = "drain deadline passed without a done event";
      opts.abortBackend();
    }, opts.drainMs ?? DRAIN_TIMEOUT_MS);
  };
  const onClientGone = () => drain("cancelled");
  opts.clientSignal.addEventListener("abort", onClientGone, { once: true });

  /** `final`: the content ends with this text (stop string, end of stream): logprobs are trimmed to it. */
  const emit = (text: string, final = false): boolean => {
    contentLength += text.length;
    const entries = lps?.release(contentLength, final);
    if (!text && !entries?.length) return true;
    if (r.ttftMs === null && text) r.ttftMs = Date.now() - opts.startedAt;
    return lps ? opts.onText(text, entries) : opts.onText(text);
  };
  /** The detokenizer's held-back tail: text of the last token. */
  const flushDetok = () => {
    const t = detok.flush();
    lps?.addTail(t);
    return t;
  };

  /** The budget refused more: ends here like a natural "length" (what the detokenizer and matcher held back goes out). */
  const budgetStop = () => {
    const tail = opts.matcher.push(flushDetok());
    emit(tail.text + (tail.stop !== null ? "" : opts.matcher.flush()), true);
    r.budgetExhausted = tail.stop === null;
    drain(tail.stop !== null ? "stop" : "length");
  };

  const onTokens = (ids: number[], logprobs: TokenLogprob[] | undefined) => {
    ids.forEach((id, i) => {
      if (id === EOS_ID) return;
      received++;
      if (draining) return;
      if (opts.budget && !opts.budget.allows(received)) {
        budgetStop();
        return;
      }
      const text = detok.push(id);
      lps?.push(text, logprobs?.[i]);
      const out = opts.matcher.push(text);
      const delivered = emit(out.text, out.stop !== null);
      if (out.stop !== null) drain("stop");
      else if (!delivered) drain("cancelled");
    });
  };

  const onDone = (ev: DoneEvent) => {
    done = ev;
    r.cachedTokens = ev.usage.cached_tokens;
    if (draining) return; // the client already has its answer (stop) or is gone (cancelled)
    if (ev.finish_reason === "error") {
      r.finishReason = "error";
      r.error = `backend error: ${ev.error ?? "unknown"}`;
      r.backendFailed = true;
      return;
    }
    // Remaining text the detokenizer and matcher held back (no stop string completed).
    const tail = opts.matcher.push(flushDetok());
    const delivered = emit(tail.text + (tail.stop !== null ? "" : opts.matcher.flush()), true);
    // "model_length" (the backend's context was reached) is reported as "length" to clients.
    r.finishReason =
      !delivered || ev.finish_reason === "cancelled"
        ? "cancelled"
        : tail.stop !== null || ev.finish_reason === "stop"
          ? "stop"
          : "length";
  };

  try {
    if (opts.clientSignal.aborted) drain("cancelled");
    let ev: GenerateEvent | undefined = open.first;
    while (ev) {
      opts.onEvent?.();
      if (ev.type === "done") {
        onDone(ev);
        break;
      }
      onTokens(ev.ids, ev.logprobs);
      const stall = draining ? null : opts.budget?.stall(received);
      if (stall) {
        await stall;
        if (!draining && !opts.budget!.allows(received)) budgetStop();
      }
      const next =
        opts.stallMs === undefined || draining
          ? await open.rest.next()
          : await nextWithin(open.rest, "stall", opts.stallMs, () => {
              stalled = true;
              void opts.cancelBackend();
              opts.abortBackend();
            });
      ev = next.done ? undefined : next.value;
    }
    if (!done && !draining) {
      r.finishReason = "error";
      r.error = "generate stream ended without a done event";
      r.backendFailed = true;
    } else if (!done) r.error ??= "generate stream ended without a done event while draining";
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    if (draining) r.error ??= `drain ended early: ${msg}`;
    else if (opts.clientSignal.aborted) r.finishReason = "cancelled";
    else {
      r.finishReason = "error";
      r.error = msg;
      r.backendFailed = true;
    }
  } finally {
    if (deadline !== undefined) clearTimeout(deadline);
    opts.clientSignal.removeEventListener("abort", onClientGone);
    if (!done) opts.abortBackend();
    // A stalled stream's read is still pending until the abort reaches it: closing must not wait on it.
    const closing = open.rest.return(undefined).catch(() => {});
    if (!stalled) await closing;
  }
  const finalUsage = (done as DoneEvent | null)?.usage;
  r.completionTokens = finalUsage ? finalUsage.completion_tokens : received;
  if (finalUsage && finalUsage.completion_tokens !== received)
    r.error ??= `backend counted ${finalUsage.completion_tokens} tokens, edge received ${received}`;
  return r;
}
