/**
 * Size and depth limits on a schema as sent, checked before it is compiled, without recursion: a deeply
 * nested value (a 400 KB `description` of brackets, say) would otherwise overflow the stack of whatever
 * walks it next (JSON.stringify, the compiler), and a huge one would cost compile time nobody pays for.
 * Annotations must have their documented types (title, description and $comment are strings).
 */
import { SchemaError } from "./schema-error";

/** Nesting of JSON objects and arrays anywhere in the schema, annotations included. */
export const MAX_SCHEMA_DEPTH = 64;
/** JSON values (objects, arrays, strings, numbers, ...) in the whole schema. */
export const MAX_SCHEMA_VALUES = 20_000;
/** Characters of any one string in the schema (a description, an enum value, a pattern). */
export const MAX_SCHEMA_STRING = 16_384;
/** Characters of all strings and keys together. */
export const MAX_SCHEMA_CHARS = 1_000_000;

const TEXT_ANNOTATIONS = new Set(["title", "description", "$comment"]);

/** Throws a SchemaError naming the first limit the schema breaks. */
export function guardSchema(schema: unknown): void {
  let values = 0;
  let chars = 0;
  const todo: Array<{ v: unknown; path: string; depth: number; key: string }> = [
    { v: schema, path: "#", depth: 0, key: "" },
  ];
  while (todo.length > 0) {
    const { v, path, depth, key } = todo.pop()!;
    if (++values > MAX_SCHEMA_VALUES)
      throw new SchemaError(key || "type", path, `the schema has more than ${MAX_SCHEMA_VALUES} values`);
    if (typeof v === "string") {
      if (v.length > MAX_SCHEMA_STRING)
        throw new SchemaError(key || "type", path, `a string longer than ${MAX_SCHEMA_STRING} characters`);
      if ((chars += v.length) > MAX_SCHEMA_CHARS)
        throw new SchemaError(key || "type", path, `the schema has more than ${MAX_SCHEMA_CHARS} characters`);
      continue;
    }
    if (typeof v !== "object" || v === null) continue;
    if (depth >= MAX_SCHEMA_DEPTH)
      throw new SchemaError(key || "type", path, `the schema nests deeper than ${MAX_SCHEMA_DEPTH} levels`);
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) todo.push({ v: v[i], path: `${path}/${i}`, depth: depth + 1, key });
      continue;
    }
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if ((chars += k.length) > MAX_SCHEMA_CHARS || k.length > MAX_SCHEMA_STRING)
        throw new SchemaError(k.slice(0, 64), path, "the schema's keys are too long");
      if (TEXT_ANNOTATIONS.has(k) && typeof x !== "string" && isSchemaPosition(path))
        throw new SchemaError(k, path, `'${k}' must be a string`);
      todo.push({ v: x, path: `${path}/${escapePointer(k)}`, depth: depth + 1, key: isSchemaPosition(path) ? k : key });
    }
  }
}

/**
 * Whether an object at `path` is a schema (so its keys are keywords), as opposed to a property name map,
 * an enum value or an example. Only used to name keywords in messages and to type-check annotations.
 */
function isSchemaPosition(path: string): boolean {
  const last = path.slice(path.lastIndexOf("/") + 1);
  const parent = path.slice(0, Math.max(0, path.lastIndexOf("/")));
  const grand = parent.slice(parent.lastIndexOf("/") + 1);
  if (path === "#") return true;
  if (["properties", "$defs", "definitions", "patternProperties", "dependentSchemas"].includes(grand)) return true;
  if (["anyOf", "oneOf", "allOf", "prefixItems"].includes(grand) && /^\d+$/.test(last)) return true;
  return ["items", "additionalProperties", "not", "propertyNames", "contains", "if", "then", "else"].includes(last);
}

export const escapePointer = (s: string) => s.replaceAll("~", "~0").replaceAll("/", "~1");
