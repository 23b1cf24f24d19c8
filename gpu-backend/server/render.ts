/**
 * The engine's outputs as the wire's NDJSON events (contract/wire.ts): a `tokens` event for new ids, then
 * exactly one `done` event on the last output. The engine never builds wire events itself.
 */
import type { GenerateEvent } from "../../contract/wire";
import type { EngineOutput } from "../engine/engine";

export function renderOutput(out: EngineOutput): GenerateEvent[] {
  const events: GenerateEvent[] = [];
  if (out.ids.length > 0)
    events.push(
      out.logprobs ? { type: "tokens", ids: out.ids, logprobs: out.logprobs } : { type: "tokens", ids: out.ids },
    );
  const f = out.finish;
  if (f)
    events.push({
      type: "done",
      finish_reason: f.reason,
      usage: f.usage,
      timings: f.timings,
      ...(f.error ? { error: f.error } : {}),
    });
  return events;
}

/** One NDJSON line per event. */
export const ndjsonLine = (ev: GenerateEvent): string => `${JSON.stringify(ev)}\n`;
