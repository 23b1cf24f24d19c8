/** Small helpers the schema compiler's modules share. */
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
