/**
 * The tool-call grammar as a JSON Schema (sent as response_format json_schema; the backend's automaton
 * enforces it token by token): a JSON array of calls, each `{"name": <one allowed name>, "arguments":
 * <that function's parameters>}`, an anyOf over the allowed functions. Exactly one call for a named
 * choice or parallel_tool_calls false; 1..MAX_PARALLEL_CALLS otherwise.
 *
 * The compiler takes $defs only at the root, so each function's $defs/definitions are hoisted there under
 * a per-function prefix and its local $refs rewritten to match.
 */
import { MAX_PARALLEL_CALLS, type ToolConfig, type ToolFunction } from "./definitions";

type Json = { [k: string]: unknown };
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** Keywords whose value maps names to schemas (the names themselves are data). */
const SCHEMA_MAPS = new Set(["properties", "patternProperties", "$defs", "definitions", "dependentSchemas"]);
/** Keywords whose value is data, never a schema (a "$ref" key inside them is not a reference). */
const DATA = new Set(["enum", "const", "default", "examples", "required"]);

/** Rewrites `#/$defs/X` and `#/definitions/X` refs in `schema` to `#/$defs/<prefix>X`, deeply. */
function rewriteRefs(schema: unknown, prefix: string): unknown {
  if (Array.isArray(schema)) return schema.map((s) => rewriteRefs(s, prefix));
  if (!isObject(schema)) return schema;
  const out: Json = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === "$ref" && typeof v === "string") {
      const m = /^#\/(\$defs|definitions)\/(.+)$/.exec(v);
      out[k] = m ? `#/$defs/${prefix}${m[2]}` : v;
    } else if (DATA.has(k)) out[k] = v;
    else if (SCHEMA_MAPS.has(k) && isObject(v))
      out[k] = Object.fromEntries(Object.entries(v).map(([name, s]) => [name, rewriteRefs(s, prefix)]));
    else out[k] = rewriteRefs(v, prefix);
  }
  return out;
}

function callSchema(f: ToolFunction, i: number, defs: Json): Json {
  const prefix = `t${i}_`;
  const { $defs, definitions, ...rest } = f.parameters as Json & { $defs?: unknown; definitions?: unknown };
  for (const table of [$defs, definitions]) {
    if (!isObject(table)) continue;
    for (const [name, def] of Object.entries(table)) defs[prefix + name] = rewriteRefs(def, prefix);
  }
  return {
    type: "object",
    properties: { name: { const: f.name }, arguments: rewriteRefs(rest, prefix) },
    required: ["name", "arguments"],
    additionalProperties: false,
  };
}

/** The functions a call may name under this choice. */
export function allowedFunctions(config: ToolConfig): ToolFunction[] {
  const c = config.choice;
  return c.type === "function" ? config.functions.filter((f) => f.name === c.name) : config.functions;
}

/** The JSON Schema every answer's call list must satisfy. */
export function callArraySchema(config: ToolConfig): Json {
  const defs: Json = {};
  const fns = allowedFunctions(config);
  const options = fns.map((f) => callSchema(f, config.functions.indexOf(f), defs));
  const single = config.choice.type === "function" || !config.parallel;
  return {
    type: "array",
    items: options.length === 1 ? options[0] : { anyOf: options },
    minItems: 1,
    maxItems: single ? 1 : MAX_PARALLEL_CALLS,
    ...(Object.keys(defs).length > 0 ? { $defs: defs } : {}),
  };
}
