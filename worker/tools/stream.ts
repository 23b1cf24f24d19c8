/**
 * One completion's text -> content and tool-call events, and its finish reason, for a request with tools.
 *
 *  - live (SSE): content and call deltas are emitted as the text arrives;
 *  - buffered (a JSON body, a cached answer): content is emitted as it arrives, but a call list only at
 *    the end, and only when it closed well-formed: a list cut short (max_tokens, a stop string) becomes
 *    content text, never a call.
 *
 * The answer has calls, and the finish reason becomes "tool_calls", only when the generation stopped on
 * its own ("stop") after a complete call list; any other reason ("length", "error", ...) is kept.
 */
import type { ToolPlan } from "./plan";
import { type ParseResult, ToolCallParser, type ToolEvent } from "./parser";

export class ToolStream {
  private readonly parser: ToolCallParser;
  private emitted = 0;

  constructor(
    plan: ToolPlan,
    private readonly live: boolean,
    newId?: () => string,
  ) {
    this.parser = new ToolCallParser(plan.parse === "forced", newId);
  }

  push(text: string): ToolEvent[] {
    return this.count(this.parser.push(text).filter((e) => this.live || e.type === "content"));
  }

  /** The last events and the finish reason the client sees. */
  finish<R extends string>(reason: R): { events: ToolEvent[]; reason: R | "tool_calls"; result: ParseResult } {
    const events = this.count(this.parser.end());
    const result = this.parser.result();
    const calls = result.calls && reason === "stop";
    if (!this.live) {
      if (calls) {
        result.calls!.forEach((c, index) => {
          events.push({ type: "call", index, id: c.id, name: c.name });
          events.push({ type: "arguments", index, text: c.arguments });
        });
      } else if (result.raw.length > this.emitted) {
        events.push({ type: "content", text: result.raw.slice(this.emitted) });
      }
    }
    return { events, reason: calls ? "tool_calls" : reason, result };
  }

  /** Tracks how much content was emitted (buffered mode returns the rest of the raw text at the end). */
  private count(events: ToolEvent[]): ToolEvent[] {
    for (const e of events) if (e.type === "content") this.emitted += e.text.length;
    return events;
  }
}
