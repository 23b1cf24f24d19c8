/**
 * Tool calling (function calling), a leaf below the API: request validation (definitions.ts, history.ts),
 * the call grammar sent as response_format (grammar.ts), and the parser that turns generated text into
 * tool-call deltas (parser.ts). Imports only contract/ and tokenizer/.
 */
export { ToolsError } from "./errors";
export {
  forcesCall,
  MAX_DESCRIPTION_CHARS,
  MAX_PARALLEL_CALLS,
  MAX_TOOLS,
  MAX_TOOLS_JSON_CHARS,
  ParallelToolCallsFieldSchema,
  parseToolConfig,
  renderedDefinitions,
  ToolChoiceFieldSchema,
  ToolsFieldSchema,
  type ToolChoice,
  type ToolConfig,
  type ToolFunction,
} from "./definitions";
export { allowedFunctions, callArraySchema } from "./grammar";
export { checkToolAnswers, HistoryCallSchema, historyCalls, type HistoryMessage } from "./history";
export { newCallId, type ParsedCall, type ParseResult, ToolCallParser, type ToolEvent } from "./parser";
export { TOOL_CALLS_MARKER } from "../tokenizer";
export { planKey, planTools, type ToolPlan } from "./plan";
export { ToolStream } from "./stream";
