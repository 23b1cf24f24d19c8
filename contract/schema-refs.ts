/** Keyword tables and small helpers the schema compiler's modules share. */
import { SchemaError } from "./schema-error";

export type SchemaObject = { [k: string]: unknown };

export const isObject = (v: unknown): v is SchemaObject => typeof v === "object" && v !== null && !Array.isArray(v);

export function jsonEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** `#/$defs/Name` (or definitions) -> the definition; anything else is a SchemaError. */
export function resolveRef(root: unknown, ref: unknown, path: string): { name: string; schema: unknown } {
  const m = typeof ref === "string" ? /^#\/(\$defs|definitions)\/([^/]+)$/.exec(ref) : null;
  if (!m)
    throw new SchemaError(
      "$ref",
      path,
      `only local references '#/$defs/Name' are supported, not ${JSON.stringify(ref)}`,
    );
  const name = m[2]!.replaceAll("~1", "/").replaceAll("~0", "~");
  const defs = isObject(root) ? root[m[1]!] : undefined;
  if (!isObject(defs) || !Object.hasOwn(defs, name)) throw new SchemaError("$ref", path, `${ref} is not defined`);
  return { name: ref as string, schema: defs[name] };
}

export const ANNOTATIONS = new Set([
  "title",
  "description",
  "default",
  "examples",
  "$comment",
  "$schema",
  "deprecated",
  "readOnly",
  "writeOnly",
  "discriminator",
]);
export const KEYWORDS: Record<string, readonly string[]> = {
  object: ["properties", "required", "additionalProperties", "propertyNames"],
  array: ["items", "prefixItems", "minItems", "maxItems"],
  string: ["minLength", "maxLength", "pattern", "format"],
  number: ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"],
};
export const SUPPORTED = new Set([
  ...ANNOTATIONS,
  ...Object.values(KEYWORDS).flat(),
  "type",
  "enum",
  "const",
  "anyOf",
  "oneOf",
  "allOf",
  "$defs",
  "definitions",
  "$ref",
]);
export const TYPES = new Set(["object", "array", "string", "number", "integer", "boolean", "null"]);

export function inferType(s: SchemaObject): string | undefined {
  for (const [t, keys] of Object.entries(KEYWORDS)) if (keys.some((k) => s[k] !== undefined)) return t;
  return undefined;
}

export function hasType(v: unknown, t: unknown): boolean {
  switch (t) {
    case "null":
      return v === null;
    case "boolean":
      return typeof v === "boolean";
    case "integer":
      return typeof v === "number" && Number.isInteger(v);
    case "number":
      return typeof v === "number";
    case "string":
      return typeof v === "string";
    case "array":
      return Array.isArray(v);
    case "object":
      return isObject(v);
    default:
      return false;
  }
}
