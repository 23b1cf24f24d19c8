/**
 * A completion's events for a request whose tool choice needs its output parsed ("auto", "required"/
 * "any", a named function): Delta text -> Delta content and ToolCallDelta events (tools/stream.ts), and
 * the Finish reason "tool_calls" when the answer is a complete call list. Live (SSE) emits calls as they
 * are generated; buffered (JSON, a batch line) emits them at the end, and a list cut short as text.
 * A cached answer is the same Delta text, so a replay is parsed the same way (with fresh call ids).
 */
import { type ToolEvent, type ToolPlan, ToolStream } from "../tools";
import type { CompletionEvent, Usage } from "./events";

/** One Delta for the content (empty when only logprobs need a carrier), then the call pieces. */
function* mapped(events: readonly ToolEvent[], carrier: boolean): Generator<CompletionEvent> {
  let text = "";
  for (const e of events) if (e.type === "content") text += e.text;
  // Logprobs belong to the Delta after them: a push that shows nothing yet still yields an empty one.
  if (text !== "" || carrier) yield { type: "delta", text };
  for (const e of events) {
    if (e.type === "call")
      yield { type: "tool_call_delta", index: e.index, id: e.id, name: e.name, argumentsFragment: "" };
    else if (e.type === "arguments") yield { type: "tool_call_delta", index: e.index, argumentsFragment: e.text };
  }
}

export async function* withToolCalls(
  events: AsyncIterable<CompletionEvent>,
  plan: ToolPlan,
  live: boolean,
): AsyncGenerator<CompletionEvent> {
  const tools = new ToolStream(plan, live);
  let usage: Usage | null = null;
  let carrier = false;
  for await (const ev of events) {
    switch (ev.type) {
      case "logprobs":
        carrier = true;
        yield ev;
        break;
      case "delta":
        yield* mapped(tools.push(ev.text), carrier);
        carrier = false;
        break;
      case "usage":
        // Held until the last pieces are out: Usage comes after every Delta.
        usage = ev;
        break;
      case "finish": {
        const fin = ev.reason === "cancelled" ? null : tools.finish(ev.reason);
        if (fin) yield* mapped(fin.events, false);
        if (usage) yield usage;
        yield fin ? { ...ev, reason: fin.reason } : ev;
        break;
      }
      default:
        if (ev.type === "error" && usage) yield usage;
        yield ev;
    }
  }
}
