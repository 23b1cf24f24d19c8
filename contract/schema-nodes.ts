/**
 * The compiled grammar's node types and the shared free-form nodes (json_object's grammar), apart from the
 * compiler so its passes (schema-link.ts) can use them without importing it.
 */
import type { Dfa } from "./schema-dfa";

interface Base {
  id: number;
  /** Fewest stack frames a value of this node needs (schema-link.ts); 0 for the shared free-form nodes. */
  md: number;
}
export type Node =
  /** Any JSON value (json_object's values, `{}` and `true` schemas). */
  | ({ kind: "any" } & Base)
  /** Any keys, any values (json_object itself, or an object schema without properties). */
  | ({ kind: "free_object" } & Base)
  /** Any keys, values of one schema (additionalProperties as a schema, without properties). */
  | ({ kind: "map"; values: Node } & Base)
  | ObjectNode
  /** Element n is prefix[n], then items (null: no more elements). */
  | ({ kind: "array"; prefix: Node[]; items: Node | null; min: number; max: number } & Base)
  | ({ kind: "string"; min: number; max: number } & Base)
  /** A string's characters (quoted) or a number's text (unquoted) as a DFA: pattern, format, numeric bounds. */
  | ({ kind: "dfa"; dfa: Dfa; quoted: boolean } & Base)
  | ({ kind: "number"; integer: boolean } & Base)
  /** Exact texts: enum, const, true/false/null. */
  | ({ kind: "literal"; values: Literal[] } & Base)
  /** Options are never anyOf or ref nodes once the grammar is finished (schema-link.ts). */
  | ({ kind: "anyOf"; options: Node[] } & Base)
  /** A recursive $ref while its definition compiles; replaced by its target when the grammar is finished. */
  | ({ kind: "ref"; name: string; target: Node | null } & Base);

export interface ObjectNode extends Base {
  kind: "object";
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

const enc = new TextEncoder();
let nextLiteralId = 1;
/** Literal ids are process-wide, so keys of shared and compiled literals never clash. */
export const literal = (text: string): Literal => ({ id: nextLiteralId++, bytes: enc.encode(text) });

// The "any value" grammar, shared: built once, referenced by every json_object and `{}` schema.
export const ANY: Node = { kind: "any", id: -1, md: 0 };
export const FREE_OBJECT: Node = { kind: "free_object", id: -2, md: 0 };
export const ANY_ARRAY: Node = { kind: "array", id: -3, prefix: [], items: ANY, min: 0, max: Infinity, md: 0 };
export const ANY_STRING: Node = { kind: "string", id: -4, min: 0, max: Infinity, md: 0 };
export const ANY_NUMBER: Node = { kind: "number", id: -5, integer: false, md: 0 };
export const ANY_SCALAR_LITERALS: Node = {
  kind: "literal",
  id: -6,
  values: [literal("true"), literal("false"), literal("null")],
  md: 0,
};

export const JSON_OBJECT_GRAMMAR: Grammar = { root: FREE_OBJECT };
