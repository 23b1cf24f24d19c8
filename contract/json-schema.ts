/**
 * JSON Schema (a practical subset) -> the grammar the backend's automaton walks
 * (gpu-backend/engine/constraint/automaton.ts). In contract/ because both sides compile it: the worker to
 * refuse an unsupported schema with a 400 before anything is admitted or billed, the backend to generate.
 * Pure TypeScript, no imports: it bundles into the Worker.
 *
 * Supported: type (one or a list), properties, required, additionalProperties (true/false), items, enum,
 * const, minItems/maxItems, minLength/maxLength, anyOf, $defs/definitions + $ref (no recursion), and the
 * annotations title, description, default, examples, $comment, $schema. Any other keyword is a SchemaError
 * naming it: ignoring one would let the model emit values the client's validator rejects.
 *
 * Generation is a subset of what the schema accepts (every output validates, not every valid value is
 * reachable): properties come in schema order and only the listed ones are emitted; numbers have at most
 * 15 integer and 15 fraction digits and 2 exponent digits (always finite, integers stay safe).
 */

export type Node =
  /** Any JSON value (json_object's values, `{}` and `true` schemas). */
  | { kind: "any"; id: number }
  /** Any keys, any values (json_object itself, or an object schema without properties). */
  | { kind: "free_object"; id: number }
  | ObjectNode
  | { kind: "array"; id: number; items: Node; min: number; max: number }
  | { kind: "string"; id: number; min: number; max: number }
  | { kind: "number"; id: number; integer: boolean }
  /** Exact texts: enum, const, true/false/null. */
  | { kind: "literal"; id: number; values: Literal[] }
  | { kind: "anyOf"; id: number; options: Node[] };

export interface ObjectNode {
  kind: "object";
  id: number;
  props: Prop[];
  /** Index of the last required property (-1: none); "}" is allowed once past it. */
  lastRequired: number;
}

export interface Literal {
  id: number;
  bytes: Uint8Array;
}

export interface Prop {
  name: string;
  /** The key as it appears in the output: JSON-encoded, quotes included. */
  key: Literal;
  node: Node;
  required: boolean;
}

export interface Grammar {
  root: Node;
}

/** The schema uses something outside the supported subset; `keyword` names it, `path` is where. */
export class SchemaError extends Error {
  constructor(
    readonly keyword: string,
    readonly path: string,
    detail: string,
  ) {
    super(`response_format schema: ${detail} (keyword '${keyword}' at ${path || "#"})`);
  }
}

const ANNOTATIONS = new Set(["title", "description", "default", "examples", "$comment", "$schema"]);
const SUPPORTED = new Set([
  ...ANNOTATIONS,
  "type",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "enum",
  "const",
  "minItems",
  "maxItems",
  "minLength",
  "maxLength",
  "anyOf",
  "$defs",
  "definitions",
  "$ref",
]);
const TYPES = new Set(["object", "array", "string", "number", "integer", "boolean", "null"]);
/** Bounds the work one schema can cause (compile time, key space). */
const MAX_NODES = 2000;
const MAX_LITERALS = 2000;

const enc = new TextEncoder();
let nextLiteralId = 1;
/** Literal ids are process-wide, so keys of shared and compiled literals never clash. */
export const literal = (text: string): Literal => ({ id: nextLiteralId++, bytes: enc.encode(text) });

// The "any value" grammar, shared: built once, referenced by every json_object and `{}` schema.
export const ANY: Node = { kind: "any", id: -1 };
export const FREE_OBJECT: Node = { kind: "free_object", id: -2 };
export const ANY_ARRAY: Node = { kind: "array", id: -3, items: ANY, min: 0, max: Infinity };
export const ANY_STRING: Node = { kind: "string", id: -4, min: 0, max: Infinity };
export const ANY_NUMBER: Node = { kind: "number", id: -5, integer: false };
export const ANY_SCALAR_LITERALS: Node = {
  kind: "literal",
  id: -6,
  values: [literal("true"), literal("false"), literal("null")],
};

export const JSON_OBJECT_GRAMMAR: Grammar = { root: FREE_OBJECT };

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type SchemaObject = { [k: string]: unknown };

const isObject = (v: unknown): v is SchemaObject => typeof v === "object" && v !== null && !Array.isArray(v);

export function compileSchema(schema: unknown): Grammar {
  return { root: new Compiler(schema).compile(schema, "#") };
}

class Compiler {
  private nodes = 0;
  private literalCount = 0;
  private readonly refs = new Map<string, Node>();
  private readonly resolving = new Set<string>();
  constructor(private readonly rootSchema: unknown) {}

  compile(s: unknown, path: string): Node {
    if (++this.nodes > MAX_NODES) throw new SchemaError("$ref", path, `schema expands to more than ${MAX_NODES} nodes`);
    if (s === true) return ANY;
    if (s === false) throw new SchemaError("false", path, "a false schema accepts nothing");
    if (!isObject(s)) throw new SchemaError("type", path, "a schema must be an object or a boolean");
    for (const k of Object.keys(s)) if (!SUPPORTED.has(k)) throw new SchemaError(k, path, `'${k}' is not supported`);
    if (path !== "#" && (s.$defs !== undefined || s.definitions !== undefined)) {
      throw new SchemaError(
        s.$defs !== undefined ? "$defs" : "definitions",
        path,
        "definitions are only supported at the root",
      );
    }
    if (s.$ref !== undefined) return this.ref(s, path);
    if (s.anyOf !== undefined) return this.anyOf(s, path);
    if (s.enum !== undefined || s.const !== undefined) return this.literals(s, path);
    const types: unknown[] = Array.isArray(s.type) ? s.type : [s.type ?? inferType(s)];
    if (types.length === 0) throw new SchemaError("type", path, "an empty type list accepts nothing");
    for (const t of types) {
      if (t !== undefined && (typeof t !== "string" || !TYPES.has(t)))
        throw new SchemaError("type", path, `unknown type ${JSON.stringify(t)}`);
    }
    this.only(s, path, types as Array<string | undefined>);
    const options = types.map((t) => this.typed(s, t as string | undefined, path));
    return options.length === 1 ? options[0]! : this.node({ kind: "anyOf", options });
  }

  private node<T extends { kind: string }>(n: T): T & { id: number } {
    return { ...n, id: this.nodes++ };
  }

  private typed(s: SchemaObject, t: string | undefined, path: string): Node {
    switch (t) {
      case undefined:
        return ANY;
      case "object":
        return this.object(s, path);
      case "array": {
        const [min, max] = this.bounds(s, "minItems", "maxItems", path);
        const items = s.items === undefined ? ANY : this.compile(s.items, `${path}/items`);
        return this.node({ kind: "array", items, min, max });
      }
      case "string": {
        const [min, max] = this.bounds(s, "minLength", "maxLength", path);
        return this.node({ kind: "string", min, max });
      }
      case "number":
      case "integer":
        return this.node({ kind: "number", integer: t === "integer" });
      case "boolean":
        return this.node({ kind: "literal", values: [literal("true"), literal("false")] });
      default:
        return this.node({ kind: "literal", values: [literal("null")] });
    }
  }

  /** Keywords that apply to none of the schema's types are refused rather than silently dropped. */
  private only(s: SchemaObject, path: string, types: Array<string | undefined>): void {
    const allowed: Record<string, string[]> = {
      object: ["properties", "required", "additionalProperties"],
      array: ["items", "minItems", "maxItems"],
      string: ["minLength", "maxLength"],
    };
    for (const [t, keys] of Object.entries(allowed)) {
      if (types.includes(t)) continue;
      for (const k of keys) {
        if (s[k] !== undefined)
          throw new SchemaError(k, path, `'${k}' applies to type ${t}, not ${types.join("|") || "an untyped schema"}`);
      }
    }
  }

  private object(s: SchemaObject, path: string): Node {
    const ap = s.additionalProperties;
    if (ap !== undefined && typeof ap !== "boolean") {
      throw new SchemaError("additionalProperties", path, "only true or false is supported, not a schema");
    }
    const req = s.required ?? [];
    if (!Array.isArray(req) || !req.every((r) => typeof r === "string"))
      throw new SchemaError("required", path, "must be a list of names");
    const props = s.properties;
    if (props === undefined && ap !== false) {
      if (req.length > 0) throw new SchemaError("required", path, "required names need properties");
      return FREE_OBJECT;
    }
    if (props !== undefined && !isObject(props)) throw new SchemaError("properties", path, "must be an object");
    const names = Object.keys(props ?? {});
    for (const r of req) if (!names.includes(r)) throw new SchemaError("required", path, `'${r}' is not in properties`);
    const list: Prop[] = names.map((name) => ({
      name,
      key: this.lit(JSON.stringify(name), path),
      node: this.compile(props![name], `${path}/properties/${escapePointer(name)}`),
      required: req.includes(name),
    }));
    let lastRequired = -1;
    list.forEach((p, i) => {
      if (p.required) lastRequired = i;
    });
    return this.node({ kind: "object", props: list, lastRequired });
  }

  private bounds(s: SchemaObject, minKey: string, maxKey: string, path: string): [number, number] {
    const get = (k: string, dflt: number) => {
      const v = s[k];
      if (v === undefined) return dflt;
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0)
        throw new SchemaError(k, path, "must be a non-negative integer");
      return v;
    };
    const min = get(minKey, 0);
    const max = get(maxKey, Infinity);
    if (min > max) throw new SchemaError(minKey, path, `${minKey} exceeds ${maxKey}`);
    return [min, max];
  }

  private ref(s: SchemaObject, path: string): Node {
    const ref = s.$ref;
    const defsHere = path === "#" ? ["$defs", "definitions"] : [];
    for (const k of Object.keys(s)) {
      if (k !== "$ref" && !ANNOTATIONS.has(k) && !defsHere.includes(k))
        throw new SchemaError(k, path, `'${k}' beside $ref is not supported`);
    }
    const m = typeof ref === "string" ? /^#\/(\$defs|definitions)\/([^/]+)$/.exec(ref) : null;
    if (!m)
      throw new SchemaError(
        "$ref",
        path,
        `only local references '#/$defs/Name' are supported, not ${JSON.stringify(ref)}`,
      );
    const name = m[2]!.replaceAll("~1", "/").replaceAll("~0", "~");
    const defs = isObject(this.rootSchema) ? this.rootSchema[m[1]!] : undefined;
    if (!isObject(defs) || !(name in defs)) throw new SchemaError("$ref", path, `${ref} is not defined`);
    const done = this.refs.get(ref as string);
    if (done) return done;
    if (this.resolving.has(ref as string))
      throw new SchemaError("$ref", path, `recursive reference ${ref} is not supported`);
    this.resolving.add(ref as string);
    const node = this.compile(defs[name], ref as string);
    this.resolving.delete(ref as string);
    this.refs.set(ref as string, node);
    return node;
  }

  private anyOf(s: SchemaObject, path: string): Node {
    for (const k of Object.keys(s))
      if (k !== "anyOf" && !ANNOTATIONS.has(k)) throw new SchemaError(k, path, `'${k}' beside anyOf is not supported`);
    const list = s.anyOf;
    if (!Array.isArray(list) || list.length === 0) throw new SchemaError("anyOf", path, "must be a non-empty list");
    const options = list.map((o, i) => this.compile(o, `${path}/anyOf/${i}`));
    return options.length === 1 ? options[0]! : this.node({ kind: "anyOf", options });
  }

  private literals(s: SchemaObject, path: string): Node {
    for (const k of Object.keys(s)) {
      if (!["enum", "const", "type"].includes(k) && !ANNOTATIONS.has(k))
        throw new SchemaError(k, path, `'${k}' beside enum/const is not supported`);
    }
    let values: unknown[];
    if (s.enum !== undefined) {
      if (!Array.isArray(s.enum) || s.enum.length === 0)
        throw new SchemaError("enum", path, "must be a non-empty list");
      values = s.enum;
    } else values = [s.const];
    if (s.const !== undefined) values = values.filter((v) => jsonEqual(v, s.const));
    const types = s.type === undefined ? null : Array.isArray(s.type) ? s.type : [s.type];
    if (types) values = values.filter((v) => types.some((t) => hasType(v, t)));
    if (values.length === 0)
      throw new SchemaError(s.enum !== undefined ? "enum" : "const", path, "no value is allowed by the other keywords");
    const texts = [...new Set(values.map((v) => JSON.stringify(v as Json)))];
    return this.node({ kind: "literal", values: texts.map((t) => this.lit(t, path)) });
  }

  private lit(text: string, path: string): Literal {
    if (++this.literalCount > MAX_LITERALS)
      throw new SchemaError("enum", path, `more than ${MAX_LITERALS} literal texts`);
    return literal(text);
  }
}

function inferType(s: SchemaObject): string | undefined {
  if (s.properties !== undefined || s.required !== undefined || s.additionalProperties !== undefined) return "object";
  if (s.items !== undefined || s.minItems !== undefined || s.maxItems !== undefined) return "array";
  if (s.minLength !== undefined || s.maxLength !== undefined) return "string";
  return undefined;
}

function hasType(v: unknown, t: unknown): boolean {
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

function jsonEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

const escapePointer = (s: string) => s.replaceAll("~", "~0").replaceAll("/", "~1");
