/**
 * One soak request through the worker, as one of four kinds of client: a normal one, one that aborts
 * mid-stream, one that reads very slowly, and one that does not stream. It records what the client saw:
 * the request id, the outcome, the usage it was told, and content-chunk arrival times (TTFT, inter-token).
 */

export type ClientKind = "normal" | "abort" | "slow" | "unstreamed";

export interface SoakRequest {
  base: string;
  apiKey: string;
  kind: ClientKind;
  maxTokens: number;
  temperature: number;
  seed: number;
  prompt: string;
  /** abort: leave after this many SSE frames; slow: wait this long after each read. */
  abortAfterFrames: number;
  slowReadMs: number;
  /** A request still running after this long is a hang. */
  hangMs: number;
  /** Called once, at the stream's first content token (a test that must act mid-stream waits on it). */
  onFirstToken?: () => void;
}

export type Outcome =
  | "completed" // finish_reason stop/length, usage received
  | "aborted" // the client left mid-stream on purpose
  | "stream_error" // the stream ended with finish_reason "error" (a backend died after the first token)
  | "http_error" // a non-200 answer (e.g. 502/503 when no replica could serve it)
  | "network_error" // the connection failed
  | "hung"; // still running at hangMs

export interface Seen {
  kind: ClientKind;
  requestId: string | null;
  status: number;
  outcome: Outcome;
  /** The usage the client was told (completed and stream_error). */
  usage?: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details?: { cached_tokens?: number } };
  finishReason?: string;
  ttftMs?: number;
  /** Gaps between consecutive content chunks. */
  gapsMs: number[];
  totalMs: number;
  detail?: string;
}

type Json = Record<string, unknown>;

export async function soakRequest(r: SoakRequest): Promise<Seen> {
  const t0 = performance.now();
  const ac = new AbortController();
  let hung = false;
  const timer = setTimeout(() => {
    hung = true;
    ac.abort();
  }, r.hangMs);
  const seen: Seen = { kind: r.kind, requestId: null, status: 0, outcome: "network_error", gapsMs: [], totalMs: 0 };
  try {
    await run(r, ac, seen, t0);
  } catch (e) {
    seen.outcome = hung ? "hung" : seen.outcome === "aborted" ? "aborted" : "network_error";
    // undici's "fetch failed" says nothing; its cause (ECONNRESET, ECONNREFUSED, "other side closed") does.
    const cause = (e as Error & { cause?: { code?: string; message?: string } }).cause;
    seen.detail ??= `${(e as Error).message}${cause ? ` (${cause.code ?? cause.message ?? String(cause)})` : ""}`;
  } finally {
    clearTimeout(timer);
    seen.totalMs = performance.now() - t0;
  }
  if (hung) seen.outcome = "hung";
  return seen;
}

async function run(r: SoakRequest, ac: AbortController, seen: Seen, t0: number): Promise<void> {
  const stream = r.kind !== "unstreamed";
  const res = await fetch(`${r.base}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${r.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({
      model: "mistral-tiny",
      messages: [{ role: "user", content: r.prompt }],
      max_tokens: r.maxTokens,
      temperature: r.temperature,
      random_seed: r.seed,
      stream,
      ...(stream ? { stream_options: { include_usage: true } } : {}),
    }),
    signal: ac.signal,
  });
  seen.requestId = res.headers.get("x-request-id");
  seen.status = res.status;
  if (res.status !== 200) {
    seen.outcome = "http_error";
    seen.detail = (await res.text()).slice(0, 200);
    return;
  }
  if (!stream) {
    // Non-streaming answers may start with keep-alive spaces (README): JSON.parse skips them.
    const j = JSON.parse(await res.text()) as Json;
    const choice = (j.choices as Json[] | undefined)?.[0];
    seen.usage = j.usage as Seen["usage"];
    seen.finishReason = choice?.finish_reason as string | undefined;
    seen.ttftMs = performance.now() - t0;
    seen.outcome = seen.finishReason === "error" ? "stream_error" : "completed";
    return;
  }
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let frames = 0;
  let last = 0;
  let errored = false;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let cut: number;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const frame = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      if (!frame.startsWith("data: ")) continue;
      frames++;
      const data = frame.slice(6);
      if (data === "[DONE]") continue;
      const j = JSON.parse(data) as Json;
      if (j.error) {
        errored = true;
        continue;
      }
      const choice = (j.choices as Json[] | undefined)?.[0];
      const content = (choice?.delta as Json | undefined)?.content;
      if (typeof content === "string" && content.length > 0) {
        const now = performance.now();
        if (last === 0) {
          seen.ttftMs = now - t0;
          r.onFirstToken?.();
        } else seen.gapsMs.push(now - last);
        last = now;
      }
      if (choice?.finish_reason) seen.finishReason = choice.finish_reason as string;
      if (j.usage) seen.usage = j.usage as Seen["usage"];
    }
    if (r.kind === "abort" && frames >= r.abortAfterFrames && !seen.finishReason) {
      seen.outcome = "aborted";
      ac.abort();
      await reader.cancel().catch(() => undefined);
      return;
    }
    if (r.kind === "slow") await new Promise((res) => setTimeout(res, r.slowReadMs));
  }
  seen.outcome =
    errored || seen.finishReason === "error" ? "stream_error" : seen.finishReason ? "completed" : "network_error";
  if (seen.outcome === "network_error") seen.detail = "the stream ended without a finish_reason";
}
