/**
 * `tools`, `tool_choice` and `parallel_tool_calls` (OpenAI and Mistral shapes) -> one ToolConfig.
 * Every function's `parameters` is compiled by the constraint compiler (contract/json-schema.ts) here,
 * so a schema the backend could not enforce is a 400 naming its path before anything is admitted or billed.
 *
 * Limits (stated in docs/tools.md): at most MAX_TOOLS functions, MAX_TOOLS_JSON_CHARS characters of
 * definitions as JSON, MAX_DESCRIPTION_CHARS per description, MAX_PARALLEL_CALLS calls per answer.
 */
import { z } from "zod";
import { compileSchema, SchemaError } from "../../contract/json-schema";
import { ToolsError } from "./errors";

export const MAX_TOOLS = 128;
export const MAX_TOOLS_JSON_CHARS = 65_536;
export const MAX_DESCRIPTION_CHARS = 4096;
/** Calls in one answer when parallel calls are allowed (the grammar's maxItems). */
export const MAX_PARALLEL_CALLS = 8;
export const TOOL_NAME_PATTERN = /^[a-zA-Z0-9_-]{1,64}$/;

/** A function the model may call, normalised: parameters is always an object schema. */
export interface ToolFunction {
  name: string;
  description: string;
  parameters: Record<string, unknown>;
}

/** "required" is OpenAI's name, "any" Mistral's: both force at least one call. */
export type ToolChoice =
  | { type: "none" }
  | { type: "auto" }
  | { type: "required" }
  | { type: "function"; name: string };

export interface ToolConfig {
  functions: ToolFunction[];
  choice: ToolChoice;
  /** false: at most one call per answer. */
  parallel: boolean;
}

/** A function without parameters takes none: its arguments are always `{}`. */
const NO_PARAMETERS = { type: "object", properties: {}, additionalProperties: false };

const toolSchema = z.object({
  type: z.literal("function").optional(),
  function: z.object({
    name: z.string().regex(TOOL_NAME_PATTERN, "must match ^[a-zA-Z0-9_-]{1,64}$"),
    description: z.string().max(MAX_DESCRIPTION_CHARS).nullish(),
    parameters: z
      .record(z.string(), z.unknown())
      .nullish()
      .describe("A JSON Schema in the supported subset (docs/tools.md); absent: no arguments."),
    strict: z.boolean().nullish().describe("Accepted; every call is strict."),
  }),
});

const choiceSchema = z.union([
  z.enum(["none", "auto", "required", "any"]),
  z.object({ type: z.literal("function").optional(), function: z.object({ name: z.string() }) }),
]);

/** The request fields' shapes (the chat body's validator and its OpenAPI document use these). */
export const ToolsFieldSchema = z
  .array(toolSchema)
  .describe(`Functions the model may call: at most ${MAX_TOOLS}, ${MAX_TOOLS_JSON_CHARS} characters of JSON.`);
export const ToolChoiceFieldSchema = choiceSchema.describe(
  '"auto" (default with tools), "none", "required" (OpenAI) or "any" (Mistral), or a named function.',
);
export const ParallelToolCallsFieldSchema = z
  .boolean()
  .describe(`Default true: up to ${MAX_PARALLEL_CALLS} calls per answer; false: exactly one.`);

/** zod issue path -> "a.b[1].c" under `root`. */
function pathOf(root: string, path: readonly PropertyKey[]): string {
  let s = root;
  for (const k of path) s += typeof k === "number" ? `[${k}]` : `.${String(k)}`;
  return s;
}

function parseWith<T>(schema: z.ZodType<T>, value: unknown, root: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  throw new ToolsError(pathOf(root, issue.path), `Invalid ${pathOf(root, issue.path)}: ${issue.message}`);
}

/** "#/properties/a/items" + keyword "type" -> ".properties.a.items.type" (JSON pointer unescaped). */
function schemaParam(e: SchemaError): string {
  const parts = e.path
    .replace(/^#\/?/, "")
    .split("/")
    .filter((p) => p !== "")
    .map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~"));
  const keyword = e.keyword === "false" ? [] : [e.keyword];
  return [...parts, ...keyword].map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`)).join("");
}

const schemaDetail = (e: SchemaError) => e.message.replace(/^response_format schema: /, "");

/**
 * The request's tool fields -> a ToolConfig, or null when no tools are given (tool_choice "none"/"auto"
 * without tools is accepted and means nothing; a forced choice without tools is a 400).
 */
export function parseToolConfig(tools: unknown, toolChoice: unknown, parallel: unknown): ToolConfig | null {
  const list = tools == null ? [] : parseWith(z.array(z.unknown()), tools, "tools");
  const choice = toolChoice == null ? null : parseWith(choiceSchema, toolChoice, "tool_choice");
  if (parallel != null && typeof parallel !== "boolean")
    throw new ToolsError("parallel_tool_calls", "parallel_tool_calls must be a boolean.");
  if (list.length === 0) {
    if (choice !== null && choice !== "none" && choice !== "auto")
      throw new ToolsError("tool_choice", "tool_choice requires tools: no function was given to call.");
    return null;
  }
  if (list.length > MAX_TOOLS) throw new ToolsError("tools", `At most ${MAX_TOOLS} tools are allowed.`);
  if (JSON.stringify(list).length > MAX_TOOLS_JSON_CHARS)
    throw new ToolsError("tools", `The tool definitions exceed ${MAX_TOOLS_JSON_CHARS} characters of JSON.`);

  const seen = new Set<string>();
  const functions = list.map((raw, i): ToolFunction => {
    const t = parseWith(toolSchema, raw, `tools[${i}]`);
    const { name } = t.function;
    if (seen.has(name)) throw new ToolsError(`tools[${i}].function.name`, `Duplicate tool name '${name}'.`);
    seen.add(name);
    const parameters = t.function.parameters ?? NO_PARAMETERS;
    try {
      compileSchema(parameters);
    } catch (e) {
      if (!(e instanceof SchemaError)) throw e;
      const param = `tools[${i}].function.parameters${schemaParam(e)}`;
      throw new ToolsError(param, `${param}: ${schemaDetail(e)}`, "unsupported_parameter");
    }
    return { name, description: t.function.description ?? "", parameters };
  });

  let parsed: ToolChoice;
  if (choice === null || choice === "auto") parsed = { type: "auto" };
  else if (choice === "none") parsed = { type: "none" };
  else if (choice === "required" || choice === "any") parsed = { type: "required" };
  else {
    if (!seen.has(choice.function.name))
      throw new ToolsError(
        "tool_choice.function.name",
        `tool_choice names '${choice.function.name.slice(0, 64)}', which is not in tools.`,
      );
    parsed = { type: "function", name: choice.function.name };
  }
  return { functions, choice: parsed, parallel: parallel !== false };
}

/** The definitions as the prompt shows them (Mistral's v3 tool shape). */
export function renderedDefinitions(config: ToolConfig): Array<Record<string, unknown>> {
  return config.functions.map((f) => ({
    type: "function",
    function: { name: f.name, description: f.description, parameters: f.parameters },
  }));
}

/** Whether the answer is constrained to calls from its first token (the prompt then ends with the marker). */
export const forcesCall = (config: ToolConfig | null): boolean =>
  config !== null && (config.choice.type === "required" || config.choice.type === "function");
