/**
 * What a request's tool configuration asks of the prompt, the backend and the parser:
 *  - "none": definitions in the prompt, free text, nothing parsed (no call is ever returned);
 *  - "auto": definitions in the prompt; the backend decodes freely until the output contains the call
 *    marker (`format_trigger`), then constrains the rest to the call list; the parser looks for the marker;
 *  - forced ("required"/"any" or a named function): the prompt ends with the marker and the whole output
 *    is constrained to the call list from its first token.
 */
import type { ResponseFormat } from "../../contract/wire";
import { TOOL_CALLS_MARKER, type TemplateOptions } from "../tokenizer";
import { forcesCall, renderedDefinitions, type ToolConfig } from "./definitions";
import { callArraySchema } from "./grammar";

export interface ToolPlan {
  config: ToolConfig;
  template: TemplateOptions;
  /** Sent to the backend: the call-list grammar (null under "none"). */
  responseFormat: ResponseFormat | null;
  /** Sent to the backend under "auto": constrain only after this text. */
  formatTrigger: string | undefined;
  /** How the output is parsed: null under "none" (it is all text). */
  parse: "forced" | "auto" | null;
}

export function planTools(config: ToolConfig): ToolPlan {
  const forced = forcesCall(config);
  const template: TemplateOptions = { tools: renderedDefinitions(config), openCall: forced };
  if (config.choice.type === "none")
    return { config, template, responseFormat: null, formatTrigger: undefined, parse: null };
  const responseFormat: ResponseFormat = { type: "json_schema", schema: callArraySchema(config) };
  return {
    config,
    template,
    responseFormat,
    formatTrigger: forced ? undefined : TOOL_CALLS_MARKER,
    parse: forced ? "forced" : "auto",
  };
}

/** The part of the plan that decides an answer, for cache keys (the definitions are in the prompt ids). */
export function planKey(plan: ToolPlan | null): unknown {
  if (!plan) return null;
  return { choice: plan.config.choice, parallel: plan.config.parallel };
}
