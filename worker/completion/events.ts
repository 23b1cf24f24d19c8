/**
 * What a completion yields, in order: any number of Delta / ToolCallDelta / Logprobs events, then one
 * Usage, then exactly one terminal event (Finish or Error). Renderers (SSE, JSON, a batch line) turn
 * these into their wire shapes; none of them bills or settles anything.
 */
import type { ApiError } from "../errors";
import type { LogprobContent } from "../../contract/api-chat";

/** Text for the client, stop strings already applied. */
export interface Delta {
  type: "delta";
  text: string;
}

/**
 * A piece of a tool call. The first piece of a call carries `index`, `id` and `name`; later pieces carry
 * `index` and an `argumentsFragment` (OpenAI's delta shape).
 */
export interface ToolCallDelta {
  type: "tool_call_delta";
  index: number;
  id?: string;
  name?: string;
  argumentsFragment?: string;
}

/** The logprobs of the Delta that follows (its text may be "", e.g. the first half of a UTF-8 character). */
export interface Logprobs {
  type: "logprobs";
  content: LogprobContent[];
}

/** What the request is charged; the usage the client is shown is exactly this. */
export interface Usage {
  type: "usage";
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  /** The exact cost rounded up to whole micro-euros. */
  costMicros: number;
}

/**
 * The completion ended normally. "cancelled": the caller went away (or stopped it); renderers write
 * nothing more. `budgetExhausted`: the key's budget refused the next slice (reason is then "length").
 */
export interface Finish {
  type: "finish";
  reason: "stop" | "length" | "tool_calls" | "cancelled";
  budgetExhausted?: boolean;
}

/**
 * The completion ended in an error after it started. "backend": the model failed mid-answer (what was
 * delivered is billed); "revoked": the key was revoked mid-answer (billed like a cancellation).
 */
export interface ErrorEvent {
  type: "error";
  cause: "backend" | "revoked";
  error: ApiError;
}

export type CompletionEvent = Delta | ToolCallDelta | Logprobs | Usage | Finish | ErrorEvent;

export type TerminalEvent = Finish | ErrorEvent;

export const isTerminal = (ev: CompletionEvent): ev is TerminalEvent => ev.type === "finish" || ev.type === "error";
