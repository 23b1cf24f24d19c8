/**
 * A completion as one `chat.completion` JSON body.
 *
 * An answer ready within COMMIT_AFTER_MS is sent whole with its real status (a 502 if the backend failed,
 * and then nothing is charged). A longer one commits a 200 and JSON headers then and writes a space every
 * HEARTBEAT_MS (at most, as events arrive) until the JSON follows (leading whitespace is valid JSON):
 * clients' header timeouts (Node fetch: 300 s) never fire and retry a paid request, and the runtime sees
 * a client that left even where request.signal does not fire for a request without a response (wrangler
 * dev). A backend failure after that commit is a 200 whose choice carries the text so far and
 * finish_reason "error", billed like the streamed case. A client that left gets a 499 (or nothing more).
 */
import type { Completion } from "../completion/chat";
import type { ErrorEvent, Finish } from "../completion/events";
import type { LogprobContent, ToolCall, Usage as UsageBody } from "../../contract/api-chat";
import { CLIENT_CLOSED } from "../completion/metered";
import * as out from "./chat-response";
import { toUsage } from "./render-sse";
import { BodyChannel, STREAMED_JSON_HEADERS } from "./sse";

/** How long an answer may take before its 200 and headers are committed. */
export const COMMIT_AFTER_MS = 500;
/** Once committed: at most one keep-alive space per this interval, written as events arrive. */
export const HEARTBEAT_MS = 500;

export interface JsonOptions {
  /** The request asked for logprobs: the choice carries them. */
  logprobs: boolean;
  onGone: () => void;
  waitUntil: (promise: Promise<unknown>) => void;
}

/** Everything of a completion the body needs, gathered from its events. */
interface Answer {
  text: string;
  logprobs: LogprobContent[];
  toolCalls: ToolCall[];
  usage: UsageBody;
  end: Finish | ErrorEvent;
}

const jsonResponse = (body: unknown, status: number, headers: Record<string, string>) =>
  new Response(JSON.stringify(body), { status, headers: { ...headers, "content-type": "application/json" } });

function body(completion: Completion, a: Answer, logprobs: boolean) {
  const end: out.Ending =
    a.end.type === "error"
      ? { finishReason: "error" }
      : { finishReason: a.end.reason === "cancelled" ? "stop" : a.end.reason, budgetExhausted: a.end.budgetExhausted };
  return out.completion(completion, a.text, end, a.usage, logprobs ? a.logprobs : undefined, a.toolCalls);
}

export async function renderJson(completion: Completion, o: JsonOptions): Promise<Response> {
  // "waiting" until the answer or the commit deadline, whichever comes first, decides how it is sent.
  let phase: "waiting" | "answered" | "committed" = "waiting";
  const channel = new BodyChannel(o.onGone);
  let lastWrite = 0;
  const keepAlive = () => {
    if (phase !== "committed" || Date.now() - lastWrite < HEARTBEAT_MS) return;
    lastWrite = Date.now();
    if (!channel.write(" ")) o.onGone();
  };
  let answered!: (a: Answer | null) => void;
  const answer = new Promise<Answer | null>((resolve) => (answered = resolve));
  const timer = setTimeout(() => {
    if (phase !== "waiting") return;
    phase = "committed";
    answered(null);
  }, COMMIT_AFTER_MS);

  // The completion runs to its end (drain and settle included) under waitUntil: a client that leaves
  // mid-way is still billed exactly.
  const work = (async () => {
    const a: Answer = {
      text: "",
      logprobs: [],
      toolCalls: [],
      usage: out.usage(0, 0, 0, 0),
      end: { type: "finish", reason: "stop" },
    };
    for await (const ev of completion.events) {
      keepAlive();
      if (ev.type === "delta") a.text += ev.text;
      else if (ev.type === "logprobs") a.logprobs.push(...ev.content);
      else if (ev.type === "tool_call_delta") {
        const call = (a.toolCalls[ev.index] ??= { id: "", type: "function", function: { name: "", arguments: "" } });
        if (ev.id !== undefined) call.id = ev.id;
        if (ev.name !== undefined) call.function.name = ev.name;
        call.function.arguments += ev.argumentsFragment ?? "";
      } else if (ev.type === "usage") a.usage = toUsage(ev);
      else {
        a.end = ev;
        if (phase === "waiting") {
          phase = "answered";
          // Nothing was delivered when the backend failed: nothing is charged.
          if (ev.type === "error" && ev.cause === "backend") completion.nothingDelivered();
        }
      }
    }
    clearTimeout(timer);
    if (phase === "answered") return answered(a);
    // Committed: the body carries whatever was generated, a failure included, and is billed as such.
    const cancelled = a.end.type === "finish" ? a.end.reason === "cancelled" : a.end.cause === "revoked";
    if (!cancelled) channel.write(JSON.stringify(body(completion, a, o.logprobs)));
    else if (a.end.type === "error") channel.write(JSON.stringify(a.end.error.body()));
    channel.close();
    completion.logResult(cancelled ? CLIENT_CLOSED : 200);
  })();
  o.waitUntil(work);

  const a = await answer;
  if (a === null) {
    lastWrite = Date.now();
    channel.write(" ");
    return new Response(channel.readable, {
      status: 200,
      headers: { ...completion.headers, ...STREAMED_JSON_HEADERS },
    });
  }
  // Answered before the commit: the channel is unused, and the whole answer goes out with its status.
  await work;
  if (a.end.type === "finish" && a.end.reason === "cancelled") {
    completion.logResult(CLIENT_CLOSED);
    return new Response(null, { status: CLIENT_CLOSED });
  }
  if (a.end.type === "error") {
    completion.logResult(a.end.error.status);
    return jsonResponse(a.end.error.body(), a.end.error.status, completion.headers);
  }
  completion.logResult(200);
  return jsonResponse(body(completion, a, o.logprobs), 200, completion.headers);
}
