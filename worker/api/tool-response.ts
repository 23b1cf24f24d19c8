/**
 * Tool-call events (tools/parser.ts) in the response shapes of /v1/chat/completions.
 *
 * Streamed, OpenAI's delta shape: a call's first delta carries `index`, `id`, `type` and `function.name`
 * (with `arguments: ""`), later ones `index` and an `arguments` fragment. Later fragments repeat
 * `function.name` as "": Mistral's SDK requires a name string in every tool-call delta, OpenAI's SDK and
 * LangChain ignore or append an empty one.
 */
import type { ParsedCall, ToolEvent } from "../tools";

export interface ToolCallDeltaJson {
  index: number;
  id?: string;
  type?: "function";
  function: { name: string; arguments: string };
}

export interface ToolCallJson {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

/** One SSE delta's fields for these events: `content` and/or `tool_calls` (null when there is nothing). */
export function deltaOf(events: readonly ToolEvent[]): { content?: string; tool_calls?: ToolCallDeltaJson[] } | null {
  let content = "";
  const calls: ToolCallDeltaJson[] = [];
  for (const e of events) {
    if (e.type === "content") content += e.text;
    else if (e.type === "call")
      calls.push({ index: e.index, id: e.id, type: "function", function: { name: e.name, arguments: "" } });
    else calls.push({ index: e.index, function: { name: "", arguments: e.text } });
  }
  if (content === "" && calls.length === 0) return null;
  return { ...(content !== "" ? { content } : {}), ...(calls.length > 0 ? { tool_calls: calls } : {}) };
}

/** Buffered events (tools/stream.ts, not live) -> the answer's content and calls. */
export function messageOf(events: readonly ToolEvent[]): { content: string; calls: ParsedCall[] } {
  let content = "";
  const calls: ParsedCall[] = [];
  for (const e of events) {
    if (e.type === "content") content += e.text;
    else if (e.type === "call") calls[e.index] = { id: e.id, name: e.name, arguments: "" };
    else calls[e.index]!.arguments += e.text;
  }
  return { content, calls };
}

export const toolCallsJson = (calls: readonly ParsedCall[]): ToolCallJson[] =>
  calls.map((c) => ({ id: c.id, type: "function", function: { name: c.name, arguments: c.arguments } }));

/** A whole answer as one delta (a replayed cached answer): its text and each call in one piece. */
export function wholeDelta(
  text: string,
  calls: readonly ToolCallJson[] | undefined,
): { content?: string; tool_calls?: ToolCallDeltaJson[] } | null {
  const list = (calls ?? []).map((c, index) => ({ index, ...c }));
  if (text === "" && list.length === 0) return null;
  return { ...(text !== "" ? { content: text } : {}), ...(list.length > 0 ? { tool_calls: list } : {}) };
}
