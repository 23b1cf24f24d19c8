/**
 * Seeded generators for the constraint tests: random schemas from the supported subset (numeric bounds,
 * patterns, formats, unions, recursion), hostile schemas (deep, wide, recursive), a byte-level random walk
 * through the automaton, and ajv (2020-12, formats included) as the independent judge.
 */
import Ajv2020 from "ajv/dist/2020";
import addFormats from "ajv-formats";
import type { Grammar } from "../../../contract/json-schema";
import { accepting, advance, initialState, type State } from "../../../gpu-backend/engine/constraint/automaton";

export type Rng = () => number;
type S = Record<string, unknown>;

/** mulberry32 */
export function rngFrom(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const int = (r: Rng, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));

export const PATTERNS = [
  "^[A-Z]{3}-\\d{2,4}$",
  "^(foo|bar)+$",
  "^[a-z]+(_[a-z0-9]+)*$",
  "^\\+?[0-9]{7,12}$",
  "^ab?c",
  "^#[0-9a-fA-F]{6}$",
  "^v\\d+\\.\\d+(\\.\\d+)?(-[a-z]+)?$",
  "^[^,]{1,8}$",
  "x*y$",
  "^(?:[A-Za-z0-9_'+\\-]+\\.)*[A-Za-z0-9_'+\\-]*[A-Za-z0-9_+-]@(?:[A-Za-z0-9][A-Za-z0-9\\-]*\\.)+[A-Za-z]{2,}$",
];
export const FORMAT_NAMES = ["date-time", "date", "time", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"];

/** A random schema from the supported subset; `defs` collects $defs for recursion. */
export function randomSchema(r: Rng, depth = 0): S {
  const root = scalarOrContainer(r, depth, true);
  if (r() < 0.25) {
    // A recursive tree: recursion lives in an optional array, so it can always end.
    return {
      $defs: {
        Node: {
          type: "object",
          properties: {
            v: scalarOrContainer(r, 3, false),
            kids: { type: "array", items: { $ref: "#/$defs/Node" }, maxItems: 3 },
          },
          required: ["v"],
        },
      },
      type: "object",
      properties: { tree: { $ref: "#/$defs/Node" }, other: root },
      required: ["tree"],
    };
  }
  return root.type === "object" ? root : { type: "object", properties: { x: root }, required: ["x"] };
}

function scalarOrContainer(r: Rng, depth: number, top: boolean): S {
  const k = depth >= 3 ? int(r, 0, 6) : int(r, 0, 10);
  switch (k) {
    case 0:
      return { type: "integer", ...bounds(r, true) };
    case 1:
      return { type: "number", ...bounds(r, false) };
    case 2:
      return { type: "string", pattern: pick(r, PATTERNS) };
    case 3:
      return { type: "string", format: pick(r, FORMAT_NAMES) };
    case 4:
      return r() < 0.5 ? { enum: ["a", "b", 3, null, true] } : { const: pick(r, ["x", 1, false]) };
    case 5:
      return { type: [pick(r, ["string", "integer", "boolean"]), "null"] };
    case 6:
      return { type: "string", minLength: int(r, 0, 3), maxLength: int(r, 3, 12) };
    case 7:
    case 8: {
      const props: S = {};
      const n = int(r, 1, 4);
      const req: string[] = [];
      for (let i = 0; i < n; i++) {
        props[`p${i}`] = scalarOrContainer(r, depth + 1, false);
        if (r() < 0.6) req.push(`p${i}`);
      }
      const o: S = { type: "object", properties: props, required: req, title: "T" };
      if (r() < 0.3) o.additionalProperties = false;
      else if (!top && r() < 0.4) return { allOf: [o, { type: "object", properties: { extra: { type: "boolean" } } }] };
      return o;
    }
    case 9:
      if (r() < 0.5)
        return {
          type: "array",
          prefixItems: [scalarOrContainer(r, depth + 1, false), { type: "boolean" }],
          items: false,
          minItems: 1,
        };
      return {
        type: "array",
        items: scalarOrContainer(r, depth + 1, false),
        minItems: int(r, 0, 2),
        maxItems: int(r, 2, 5),
      };
    default:
      return r() < 0.5
        ? { anyOf: [scalarOrContainer(r, depth + 1, false), { type: "null" }] }
        : {
            oneOf: [
              { type: "string", format: "date" },
              { type: "integer", minimum: 0 },
              { type: "object", properties: { k: { const: 1 } }, required: ["k"] },
            ],
          };
  }
}

function bounds(r: Rng, integer: boolean): S {
  const out: S = {};
  const lo = int(r, -1000, 1000) / (integer || r() < 0.5 ? 1 : 4);
  const hi = lo + int(r, 0, 2000) / (integer || r() < 0.5 ? 1 : 8);
  if (r() < 0.6) out[r() < 0.5 ? "minimum" : "exclusiveMinimum"] = lo;
  if (r() < 0.6) out[r() < 0.5 ? "maximum" : "exclusiveMaximum"] = hi;
  if (integer && r() < 0.3) out.multipleOf = int(r, 2, 7);
  // An exclusive range with nothing inside is the generator's own mistake; widen it.
  if (out.exclusiveMinimum !== undefined && out.exclusiveMaximum !== undefined)
    out.exclusiveMaximum = (out.exclusiveMinimum as number) + 50;
  return out;
}

/**
 * A random walk over the automaton one byte at a time: among the bytes the state allows, structural ones
 * are favoured so documents end. Returns the text when it completes, null when it ran out of room.
 */
export function randomDocument(g: Grammar, r: Rng, maxBytes = 3000): string | null {
  let state: State = initialState(g);
  const out: number[] = [];
  const one = new Uint8Array(1);
  while (out.length < maxBytes) {
    if (state.some(accepting) && r() < 0.5) return new TextDecoder().decode(Uint8Array.from(out));
    const options: Array<[number, State]> = [];
    for (let b = 0; b < 256; b++) {
      one[0] = b;
      const next = advance(state, one);
      if (next) options.push([b, next]);
    }
    if (options.length === 0) return state.some(accepting) ? new TextDecoder().decode(Uint8Array.from(out)) : null;
    const weight = (b: number) => ('"]}'.includes(String.fromCharCode(b)) ? 40 : b >= 0x80 ? 0.05 : 1);
    const total = options.reduce((s, [b]) => s + weight(b), 0);
    let x = r() * total;
    let chosen = options[options.length - 1]!;
    for (const o of options)
      if ((x -= weight(o[0])) <= 0) {
        chosen = o;
        break;
      }
    out.push(chosen[0]);
    state = chosen[1];
  }
  return null;
}

export function makeAjv() {
  const ajv = new Ajv2020({ strict: false, allErrors: false });
  addFormats(ajv);
  return ajv;
}

/** Hostile schemas: the audit's three, then seeded deep, wide and recursive ones. */
export function hostileSchemas(seed: number, count: number): Array<{ name: string; schema: unknown }> {
  const out: Array<{ name: string; schema: unknown }> = [];
  const chain = (n: number) => {
    const defs: S = {};
    for (let i = 0; i < n; i++)
      defs[`d${i}`] = { anyOf: [{ $ref: `#/$defs/d${i + 1}` }, { $ref: `#/$defs/d${i + 1}` }] };
    defs[`d${n}`] = { type: "string" };
    return { $defs: defs, $ref: "#/$defs/d0" };
  };
  out.push({ name: "audit: doubling $defs anyOf chain (depth 19)", schema: chain(19) });
  out.push({ name: "audit: doubling $defs anyOf chain (depth 200)", schema: chain(200) });
  out.push({
    name: "audit: 64 strings with huge distinct maxLengths",
    schema: {
      type: "object",
      properties: {
        s: { anyOf: Array.from({ length: 64 }, (_, i) => ({ type: "string", maxLength: 1_000_000 + i })) },
      },
      required: ["s"],
    },
  });
  out.push({
    name: "audit: 400 KB nested brackets in a description",
    schema: { type: "object", description: JSON.parse("[".repeat(200_000) + "]".repeat(200_000)) },
  });
  const r = rngFrom(seed);
  for (let i = 0; out.length < count; i++) {
    switch (i % 6) {
      case 0: {
        let s: unknown = { type: "string" };
        const depth = int(r, 70, 400);
        for (let k = 0; k < depth; k++) s = { type: "object", properties: { a: s }, required: ["a"] };
        out.push({ name: `deep inline nesting ${depth}`, schema: s });
        break;
      }
      case 1: {
        const n = int(r, 6_000, 30_000);
        out.push({
          name: `wide enum ${n}`,
          schema: { enum: Array.from({ length: n }, (_, k) => `v${k}-${"x".repeat(int(r, 0, 40))}`) },
        });
        break;
      }
      case 2: {
        const n = int(r, 40, 120);
        const defs: S = {};
        for (let k = 0; k < n; k++)
          defs[`r${k}`] = { allOf: [{ $ref: `#/$defs/r${k + 1}` }, { $ref: `#/$defs/r${k + 1}` }] };
        defs[`r${n}`] = { type: "object" };
        out.push({ name: `allOf doubling chain ${n}`, schema: { $defs: defs, $ref: "#/$defs/r0" } });
        break;
      }
      case 3: {
        const k = int(r, 18, 30);
        out.push({
          name: `regex blow-up (a|b)*a(a|b){${k}}`,
          schema: { type: "string", pattern: `^(a|b)*a(a|b){${k}}$` },
        });
        break;
      }
      case 4: {
        const n = int(r, 300, 3000);
        const defs: S = {};
        for (let k = 0; k < n; k++)
          defs[`c${k}`] = { type: "object", properties: { n: { $ref: `#/$defs/c${k + 1}` } }, required: ["n"] };
        defs[`c${n}`] = { type: "integer" };
        out.push({ name: `required reference chain ${n}`, schema: { $defs: defs, $ref: "#/$defs/c0" } });
        break;
      }
      default: {
        const n = int(r, 3_000, 12_000);
        const opts = Array.from({ length: n }, (_, k) => ({
          type: "object",
          properties: { [`k${k}`]: { type: "string", maxLength: k + 1 } },
        }));
        out.push({ name: `wide distinct union ${n}`, schema: { anyOf: opts } });
      }
    }
  }
  return out;
}
