/**
 * allOf -> one schema, where the parts can be merged keyword by keyword (pydantic's `allOf: [{$ref}]`
 * wrappers, zod's intersections of objects). Parts that are $refs are inlined (not recursive ones). What
 * cannot be merged exactly is a SchemaError('allOf'): two patterns, two formats, two unions, or an
 * additionalProperties that would forbid another part's properties.
 */
import { isObject, jsonEqual, resolveRef, type SchemaObject } from "./schema-refs";
import { SchemaError } from "./schema-error";

type Charge = (n: number, keyword: string, path: string) => void;

const IGNORED = new Set([
  "title",
  "description",
  "default",
  "examples",
  "$comment",
  "deprecated",
  "readOnly",
  "writeOnly",
]);
const MAX = ["minLength", "minItems", "minimum", "exclusiveMinimum"];
const MIN = ["maxLength", "maxItems", "maximum", "exclusiveMaximum"];

/** `memo` holds merged definitions by name, so a definition referenced twice is merged once. */
export function mergeAllOf(
  s: SchemaObject,
  path: string,
  root: unknown,
  charge: Charge,
  memo: Map<string, SchemaObject> = new Map(),
  inlining: string[] = [],
): SchemaObject {
  const list = s.allOf;
  if (!Array.isArray(list) || list.length === 0) throw new SchemaError("allOf", path, "must be a non-empty list");
  const { allOf: _, ...rest } = s;
  const parts: SchemaObject[] = [];
  const add = (p: unknown, at: string, depth: string[]): void => {
    charge(1, "allOf", at);
    if (p === true) return;
    if (!isObject(p)) throw new SchemaError("allOf", at, "each part must be an object schema");
    if (p.$ref !== undefined) {
      const { name, schema } = resolveRef(root, p.$ref, at);
      if (depth.includes(name)) throw new SchemaError("allOf", at, `recursive ${name} inside allOf is not supported`);
      const { $ref: __, ...others } = p;
      add(others, at, depth);
      if (isObject(schema) && schema.allOf !== undefined) {
        let merged = memo.get(name);
        if (!merged) memo.set(name, (merged = mergeAllOf(schema, name, root, charge, memo, [...depth, name])));
        parts.push(merged);
      } else add(schema, name, [...depth, name]);
      return;
    }
    if (p.allOf !== undefined) {
      parts.push(mergeAllOf(p, at, root, charge, memo, depth));
      return;
    }
    parts.push(p);
  };
  add(rest, path, inlining);
  for (const [i, p] of list.entries()) add(p, `${path}/allOf/${i}`, inlining);
  return parts.reduce((a, b) => mergeTwo(a, b, path), {} as SchemaObject);
}

function mergeTwo(a: SchemaObject, b: SchemaObject, path: string): SchemaObject {
  const out: SchemaObject = { ...a };
  for (const [k, v] of Object.entries(b)) {
    if (IGNORED.has(k) || k === "$defs" || k === "definitions" || k === "$schema") continue;
    const u = out[k];
    if (u === undefined || jsonEqual(u, v)) {
      out[k] = v;
      continue;
    }
    if (MAX.includes(k) && typeof u === "number" && typeof v === "number") out[k] = Math.max(u, v);
    else if (MIN.includes(k) && typeof u === "number" && typeof v === "number") out[k] = Math.min(u, v);
    else if (k === "type") out.type = intersectTypes(u, v, path);
    else if (k === "required" && Array.isArray(u) && Array.isArray(v)) out.required = [...new Set([...u, ...v])];
    else if (k === "enum" && Array.isArray(u) && Array.isArray(v))
      out.enum = u.filter((x) => v.some((y) => jsonEqual(x, y)));
    else if (k === "properties" && isObject(u) && isObject(v)) {
      const props: SchemaObject = { ...u };
      for (const [name, sub] of Object.entries(v)) props[name] = name in props ? { allOf: [props[name], sub] } : sub;
      out.properties = props;
    } else if (k === "items") out.items = { allOf: [u, v] };
    else throw new SchemaError("allOf", path, `parts disagree on '${k}' and cannot be merged`);
  }
  // additionalProperties false/schema in one part must not forbid the other part's properties.
  for (const [x, y] of [
    [a, b],
    [b, a],
  ] as const) {
    if (x.additionalProperties === undefined || x.additionalProperties === true) continue;
    const mine = Object.keys(isObject(x.properties) ? x.properties : {});
    const theirs = Object.keys(isObject(y.properties) ? y.properties : {});
    if (theirs.some((n) => !mine.includes(n)))
      throw new SchemaError("allOf", path, "additionalProperties in one part forbids another part's properties");
  }
  return out;
}

function intersectTypes(a: unknown, b: unknown, path: string): unknown {
  const la = (Array.isArray(a) ? a : [a]) as string[];
  const lb = (Array.isArray(b) ? b : [b]) as string[];
  const both = new Set<string>();
  for (const t of la) {
    if (lb.includes(t)) both.add(t);
    else if (t === "integer" && lb.includes("number")) both.add("integer");
    else if (t === "number" && lb.includes("integer")) both.add("integer");
  }
  if (both.size === 0) throw new SchemaError("allOf", path, "the parts' types have nothing in common");
  return both.size === 1 ? [...both][0] : [...both];
}
