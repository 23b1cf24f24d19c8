/**
 * JSON Schema (the subset clients emit: OpenAI Structured Outputs, zod 4's toJSONSchema, pydantic v2) ->
 * the grammar the backend's automaton walks (gpu-backend/engine/constraint/automaton.ts). In contract/
 * because both sides compile it: the worker to refuse an unsupported or oversized schema with a 400 before
 * anything is admitted or billed, the backend to generate. Pure TypeScript: it bundles into the Worker.
 *
 * Supported: type (one or a list, so nullable unions), properties, required, additionalProperties (a
 * boolean or a schema), propertyNames {type: string}, items (a schema or false), prefixItems, enum, const,
 * minItems/maxItems, minLength/maxLength, pattern, format (schema-formats.ts), minimum/maximum/
 * exclusiveMinimum/exclusiveMaximum/multipleOf (schema-numbers.ts), anyOf, oneOf (options provably
 * disjoint), allOf (merged, schema-merge.ts), $defs/definitions + $ref (recursion included), and the
 * annotations. Any other keyword is a SchemaError naming it: ignoring one would let the model emit values
 * the client's validator rejects.
 *
 * Generation is a subset of what the schema accepts (every output validates, not every valid value is
 * reachable): properties come in schema order and only the listed ones are emitted; numbers have at most
 * 15 integer and 15 fraction digits and 2 exponent digits; patterned strings are printable ASCII.
 *
 * Work is bounded by what the schema expands to, not by how often it is referenced: each $ref compiles
 * once, equal nodes are shared (hash-consed), anyOf options are flattened and de-duplicated, and every
 * node, DFA state, literal byte and option entry is charged against the caps below (a SchemaError past them).
 */
import { SchemaError } from "./schema-error";
import { ANY, FREE_OBJECT, type Grammar, type Literal, literal, type Node, type Prop } from "./schema-nodes";
import { isObject, jsonEqual, resolveRef, type SchemaObject } from "./schema-refs";
import { FORMATS, IMPLIED_PATTERNS } from "./schema-formats";
import { escapePointer, guardSchema } from "./schema-guard";
import { finishGrammar } from "./schema-link";
import { mergeAllOf } from "./schema-merge";
import { numberDfa } from "./schema-numbers";
import { type Dfa, intersect, lengthRange, productDfa, RegexError } from "./schema-dfa";
import { compileAnchored, compilePattern } from "./schema-regex";

export { SchemaError };
export type { Dfa };
export * from "./schema-nodes";
export { MAX_NESTING } from "./schema-link";

const ANNOTATIONS = new Set([
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
const KEYWORDS: Record<string, readonly string[]> = {
  object: ["properties", "required", "additionalProperties", "propertyNames"],
  array: ["items", "prefixItems", "minItems", "maxItems"],
  string: ["minLength", "maxLength", "pattern", "format"],
  number: ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"],
};
const SUPPORTED = new Set([
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
const TYPES = new Set(["object", "array", "string", "number", "integer", "boolean", "null"]);

/** Distinct nodes one schema may compile to (after sharing equal ones). */
export const MAX_NODES = 5_000;
/** Distinct literal texts (enum values, keys) and their bytes. */
export const MAX_LITERALS = 5_000;
export const MAX_LITERAL_BYTES = 256 * 1024;
/** DFA states over all patterns, formats and numeric bounds of one schema. */
export const MAX_TOTAL_DFA_STATES = 20_000;
/** Nesting of subschemas while compiling, references followed (the schema guard bounds the rest). */
export const MAX_COMPILE_DEPTH = 256;
/** Compile steps of any kind (merges, flattening, node building): the bound on compile time. */
export const MAX_WORK = 200_000;

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export function compileSchema(schema: unknown): Grammar {
  guardSchema(schema);
  const c = new Compiler(schema);
  const root = c.compile(schema, "#");
  return { root: finishGrammar(root, c.built, c.oneOfs, c.charge) };
}

type NodeInit = Node extends infer N ? (N extends Node ? Omit<N, "id" | "md"> : never) : never;

export class Compiler {
  readonly built: Node[] = [];
  readonly oneOfs: Array<{ node: Node; options: Node[]; path: string }> = [];
  private work = 0;
  private depth = 0;
  private dfaStates = 0;
  private readonly interned = new Map<string, Node>();
  private readonly texts = new Map<string, Literal>();
  private literalBytes = 0;
  private readonly dfas = new Map<string, Dfa>();
  private readonly refs = new Map<string, Node>();
  private readonly merged = new Map<string, SchemaObject>();
  private readonly pending = new Map<string, Node & { kind: "ref" }>();
  constructor(private readonly rootSchema: unknown) {}

  /** Counts work against MAX_WORK; the keyword and path name what was being compiled. */
  readonly charge = (n: number, keyword: string, path: string): void => {
    if ((this.work += n) > MAX_WORK)
      throw new SchemaError(keyword, path, `the schema needs more than ${MAX_WORK} compile steps`);
  };

  compile(s: unknown, path: string): Node {
    if (this.depth >= MAX_COMPILE_DEPTH)
      throw new SchemaError("$ref", path, `subschemas and references nest deeper than ${MAX_COMPILE_DEPTH} levels`);
    this.depth++;
    try {
      return this.compileHere(s, path);
    } finally {
      this.depth--;
    }
  }

  private compileHere(s: unknown, path: string): Node {
    this.charge(1, "type", path);
    if (s === true) return ANY;
    if (s === false) throw new SchemaError("false", path, "a false schema accepts nothing");
    if (!isObject(s)) throw new SchemaError("type", path, "a schema must be an object or a boolean");
    for (const k of Object.keys(s)) {
      // uniqueItems: false constrains nothing (pydantic prints it for plain lists).
      if (!SUPPORTED.has(k) && !(k === "uniqueItems" && s[k] === false))
        throw new SchemaError(k, path, `'${k}' is not supported`);
    }
    if (path !== "#" && (s.$defs !== undefined || s.definitions !== undefined)) {
      const k = s.$defs !== undefined ? "$defs" : "definitions";
      throw new SchemaError(k, path, "definitions are only supported at the root");
    }
    if (s.allOf !== undefined)
      return this.compile(mergeAllOf(s, path, this.rootSchema, this.charge, this.merged), path);
    if (s.$ref !== undefined) return this.ref(s, path);
    if (s.anyOf !== undefined || s.oneOf !== undefined) return this.union(s, path);
    if (s.enum !== undefined || s.const !== undefined) return this.literals(s, path);
    const types: unknown[] = Array.isArray(s.type) ? s.type : [s.type ?? inferType(s)];
    if (types.length === 0) throw new SchemaError("type", path, "an empty type list accepts nothing");
    for (const t of types) {
      if (t !== undefined && (typeof t !== "string" || !TYPES.has(t)))
        throw new SchemaError("type", path, `unknown type ${JSON.stringify(t)}`);
    }
    this.only(s, path, types as Array<string | undefined>);
    // integer and number together: number covers integer.
    const list = types.includes("number") ? types.filter((t) => t !== "integer") : types;
    return this.anyOfNode(list.map((t) => this.typed(s, t as string | undefined, path)));
  }

  /** One node per distinct structure: equal subschemas, however often referenced, share states and masks. */
  node(n: NodeInit, key: string): Node {
    const hit = this.interned.get(key);
    if (hit) return hit;
    this.charge(1, "type", "#");
    if (this.built.length >= MAX_NODES)
      throw new SchemaError("type", "#", `the schema compiles to more than ${MAX_NODES} distinct nodes`);
    const made = Object.assign(n, { id: this.built.length, md: 0 }) as Node;
    this.built.push(made);
    this.interned.set(key, made);
    return made;
  }

  anyOfNode(options: Node[]): Node {
    const seen = new Set<Node>();
    const flat: Node[] = [];
    for (const o of options)
      for (const x of o.kind === "anyOf" ? o.options : [o]) if (!seen.has(x)) seen.add(x), flat.push(x);
    if (flat.length === 1) return flat[0]!;
    this.charge(flat.length, "anyOf", "#");
    return this.node({ kind: "anyOf", options: flat }, `u${flat.map((o) => o.id).sort((a, b) => a - b)}`);
  }

  private typed(s: SchemaObject, t: string | undefined, path: string): Node {
    switch (t) {
      case undefined:
        return ANY;
      case "object":
        return this.object(s, path);
      case "array":
        return this.array(s, path);
      case "string":
        return this.string(s, path);
      case "number":
      case "integer": {
        const k = KEYWORDS.number!.find((x) => s[x] !== undefined) ?? "type";
        for (const x of KEYWORDS.number!)
          if (s[x] !== undefined && typeof s[x] !== "number") throw new SchemaError(x, path, `'${x}' must be a number`);
        const key = `n${t}:${JSON.stringify(KEYWORDS.number!.map((x) => s[x] ?? null))}`;
        const dfa = this.dfa(key, k, path, () =>
          numberDfa({ integer: t === "integer", ...(s as Record<string, number | undefined>) }),
        );
        if (dfa) return this.node({ kind: "dfa", dfa, quoted: false }, `d${key}`);
        return this.node({ kind: "number", integer: t === "integer" }, `n${t}`);
      }
      case "boolean":
        return this.node({ kind: "literal", values: [this.lit("true", path), this.lit("false", path)] }, "b");
      default:
        return this.node({ kind: "literal", values: [this.lit("null", path)] }, "z");
    }
  }

  private string(s: SchemaObject, path: string): Node {
    const [min, max] = this.bounds(s, "minLength", "maxLength", path);
    const { pattern, format } = s;
    if (pattern === undefined && format === undefined) return this.node({ kind: "string", min, max }, `s${min},${max}`);
    if (pattern !== undefined && typeof pattern !== "string")
      throw new SchemaError("pattern", path, "must be a string");
    if (format !== undefined && (typeof format !== "string" || !(format in FORMATS)))
      throw new SchemaError("format", path, `format ${JSON.stringify(format)} is not supported`);
    const keyword = pattern !== undefined ? "pattern" : "format";
    const key = `p${JSON.stringify([pattern, format, min, max])}`;
    const dfa = this.dfa(key, keyword, path, () => {
      let d = format === undefined ? null : compileAnchored(FORMATS[format as string]!);
      if (pattern !== undefined && !(d && IMPLIED_PATTERNS[pattern as string] === format)) {
        const p = compilePattern(pattern as string);
        d = d ? intersect(d, p) : p;
      }
      // Patterned strings are ASCII: one byte is one code point, so a length bound is a counter.
      const [short, long] = lengthRange(d!);
      if (max !== Infinity && long > max)
        d = productDfa(
          d!,
          max + 2,
          (n) => (n + 1 > max ? -1 : n + 1),
          (n) => n >= min,
        );
      else if (short < min)
        d = productDfa(
          d!,
          min + 1,
          (n) => Math.min(n + 1, min),
          (n) => n >= min,
        );
      return d!;
    })!;
    return this.node({ kind: "dfa", dfa, quoted: true }, `d${key}`);
  }

  /** A DFA built once per key, its states charged against MAX_TOTAL_DFA_STATES; RegexError -> SchemaError. */
  private dfa(key: string, keyword: string, path: string, build: () => Dfa | null): Dfa | null {
    if (this.dfas.has(key)) return this.dfas.get(key)!;
    let d: Dfa | null;
    try {
      d = build();
    } catch (e) {
      if (e instanceof RegexError) throw new SchemaError(keyword, path, e.message);
      throw e;
    }
    if (d) {
      this.charge(d.size, keyword, path);
      if ((this.dfaStates += d.size) > MAX_TOTAL_DFA_STATES)
        throw new SchemaError(
          keyword,
          path,
          `patterns and bounds need more than ${MAX_TOTAL_DFA_STATES} automaton states`,
        );
    }
    this.dfas.set(key, d!);
    return d;
  }

  /** Keywords that apply to none of the schema's types are refused rather than silently dropped. */
  private only(s: SchemaObject, path: string, types: Array<string | undefined>): void {
    for (const [t, keys] of Object.entries(KEYWORDS)) {
      if (types.includes(t) || (t === "number" && types.includes("integer"))) continue;
      for (const k of keys) {
        if (s[k] !== undefined)
          throw new SchemaError(k, path, `'${k}' applies to type ${t}, not ${types.join("|") || "an untyped schema"}`);
      }
    }
  }

  private object(s: SchemaObject, path: string): Node {
    const ap = s.additionalProperties;
    if (ap !== undefined && typeof ap !== "boolean" && !isObject(ap))
      throw new SchemaError("additionalProperties", path, "must be a boolean or a schema");
    const pn = s.propertyNames;
    if (
      pn !== undefined &&
      pn !== true &&
      !(isObject(pn) && Object.keys(pn).every((k) => (k === "type" ? pn.type === "string" : ANNOTATIONS.has(k))))
    )
      throw new SchemaError("propertyNames", path, "only {type: 'string'} is supported");
    const req = s.required ?? [];
    if (!Array.isArray(req) || !req.every((r) => typeof r === "string"))
      throw new SchemaError("required", path, "must be a list of names");
    const props = s.properties;
    if (props === undefined && ap !== false) {
      if (req.length > 0) throw new SchemaError("required", path, "required names need properties");
      if (ap === undefined || ap === true) return FREE_OBJECT;
      const values = this.compile(ap, `${path}/additionalProperties`);
      return values === ANY ? FREE_OBJECT : this.node({ kind: "map", values }, `m${values.id}`);
    }
    // With properties, an additionalProperties schema only widens what is valid: the listed ones are emitted.
    if (ap !== undefined && typeof ap !== "boolean") this.compile(ap, `${path}/additionalProperties`);
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
    this.charge(list.length, "properties", path);
    const key = `o${list.map((p) => `${p.key.id}=${p.node.id}${p.required ? "!" : ""}`).join(",")}`;
    return this.node({ kind: "object", props: list, lastRequired }, key);
  }

  private array(s: SchemaObject, path: string): Node {
    let [min, max] = this.bounds(s, "minItems", "maxItems", path);
    const pi = s.prefixItems;
    if (pi !== undefined && (!Array.isArray(pi) || pi.length === 0))
      throw new SchemaError("prefixItems", path, "must be a non-empty list");
    if (Array.isArray(s.items))
      throw new SchemaError("items", path, "a list of items is not supported: use prefixItems");
    const prefix = ((pi ?? []) as unknown[]).map((x, i) => this.compile(x, `${path}/prefixItems/${i}`));
    const items = s.items === false ? null : s.items === undefined ? ANY : this.compile(s.items, `${path}/items`);
    if (items === null) max = Math.min(max, prefix.length);
    if (min > max) throw new SchemaError("minItems", path, "minItems exceeds the items allowed");
    const key = `a${min},${max},${prefix.map((p) => p.id)},${items?.id}`;
    return this.node({ kind: "array", prefix, items, min, max }, key);
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
    const { name, schema } = resolveRef(this.rootSchema, ref, path);
    const done = this.refs.get(name);
    if (done) return done;
    let placeholder = this.pending.get(name);
    if (placeholder) return placeholder; // recursion: linked when the definition is finished
    placeholder = { kind: "ref", name, target: null, id: -100 - this.pending.size, md: 0 };
    this.pending.set(name, placeholder);
    const node = this.compile(schema, name);
    placeholder.target = node;
    this.refs.set(name, node);
    return node;
  }

  private union(s: SchemaObject, path: string): Node {
    const keyword = s.anyOf !== undefined ? "anyOf" : "oneOf";
    for (const k of Object.keys(s))
      if (k !== keyword && !ANNOTATIONS.has(k))
        throw new SchemaError(k, path, `'${k}' beside ${keyword} is not supported`);
    const list = s[keyword];
    if (!Array.isArray(list) || list.length === 0) throw new SchemaError(keyword, path, "must be a non-empty list");
    const options = list.map((o, i) => this.compile(o, `${path}/${keyword}/${i}`));
    const node = this.anyOfNode(options);
    if (keyword === "oneOf" && options.length > 1) this.oneOfs.push({ node, options, path });
    return node;
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
      if (s.enum.length > MAX_LITERALS) throw new SchemaError("enum", path, `more than ${MAX_LITERALS} values`);
      values = s.enum;
    } else values = [s.const];
    if (s.const !== undefined) values = values.filter((v) => jsonEqual(v, s.const));
    const types = s.type === undefined ? null : Array.isArray(s.type) ? s.type : [s.type];
    if (types) values = values.filter((v) => types.some((t) => hasType(v, t)));
    if (values.length === 0)
      throw new SchemaError(s.enum !== undefined ? "enum" : "const", path, "no value is allowed by the other keywords");
    const texts = [...new Set(values.map((v) => JSON.stringify(v as Json)))];
    const lits = texts.map((t) => this.lit(t, path));
    return this.node({ kind: "literal", values: lits }, `l${lits.map((l) => l.id).sort((a, b) => a - b)}`);
  }

  private lit(text: string, path: string): Literal {
    let l = this.texts.get(text);
    if (l) return l;
    if (this.texts.size >= MAX_LITERALS) throw new SchemaError("enum", path, `more than ${MAX_LITERALS} literal texts`);
    if ((this.literalBytes += text.length) > MAX_LITERAL_BYTES)
      throw new SchemaError("enum", path, `literal texts longer than ${MAX_LITERAL_BYTES} bytes in all`);
    this.charge(1 + (text.length >> 6), "enum", path);
    this.texts.set(text, (l = literal(text)));
    return l;
  }
}

function inferType(s: SchemaObject): string | undefined {
  for (const [t, keys] of Object.entries(KEYWORDS)) if (keys.some((k) => s[k] !== undefined)) return t;
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
