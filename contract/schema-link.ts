/**
 * The last compile pass (json-schema.ts): recursive references are linked to their definitions, anyOf
 * options are flattened through references into de-duplicated leaves, each node's minimum nesting depth is
 * computed, and oneOf options are checked to be disjoint.
 *
 * Minimum depth (`md`) is what makes recursion terminate: the automaton starts a value only when the stack
 * has room for the shortest way to finish it (MAX_NESTING), so a random walk can always close what it
 * opened. A schema whose root needs more than MAX_NESTING levels is refused.
 */
import type { Node } from "./schema-nodes";
import { SchemaError } from "./schema-error";

/** Stack frames any schema value may use; deeper optional branches are not generated. */
export const MAX_NESTING = 32;
const UNREACHABLE = 1 << 20;

type Charge = (n: number, keyword: string, path: string) => void;

export function finishGrammar(
  root: Node,
  built: Node[],
  oneOfs: ReadonlyArray<{ node: Node; options: Node[]; path: string }>,
  charge: Charge,
): Node {
  const resolve = (n: Node): Node => {
    const seen = new Set<Node>();
    while (n.kind === "ref") {
      if (seen.has(n) || !n.target) throw new SchemaError("$ref", n.name, `${n.name} refers only to itself`);
      seen.add(n);
      n = n.target;
    }
    return n;
  };
  for (const n of built) {
    switch (n.kind) {
      case "object":
        for (const p of n.props) p.node = resolve(p.node);
        break;
      case "array":
        n.prefix = n.prefix.map(resolve);
        if (n.items) n.items = resolve(n.items);
        break;
      case "map":
        n.values = resolve(n.values);
        break;
      case "anyOf":
        n.options = leaves(n, resolve, charge);
        break;
    }
  }
  const r = resolve(root);
  minDepths(built, charge);
  if (r.md > MAX_NESTING)
    throw new SchemaError("$ref", "#", `every value of the schema nests deeper than ${MAX_NESTING} levels`);
  for (const o of oneOfs)
    checkDisjoint(
      o.options.map((x) => leaves(x, resolve, charge)),
      o.path,
    );
  return r;
}

/** The non-union nodes an option stands for, through references and nested unions, each once. */
function leaves(n: Node, resolve: (n: Node) => Node, charge: Charge): Node[] {
  const out: Node[] = [];
  const seen = new Set<Node>();
  const todo = [n];
  while (todo.length) {
    const x = resolve(todo.pop()!);
    if (seen.has(x)) continue;
    seen.add(x);
    charge(1, "anyOf", "#");
    if (x.kind === "anyOf") for (let i = x.options.length - 1; i >= 0; i--) todo.push(x.options[i]!);
    else out.push(x);
  }
  if (out.length === 0) throw new SchemaError("anyOf", "#", "a union that only refers to itself accepts nothing");
  return out;
}

/** Fixpoint of the fewest frames each node needs; shared free-form nodes keep 0 (they bound themselves). */
function minDepths(built: Node[], charge: Charge): void {
  for (const n of built) n.md = UNREACHABLE;
  const md = (n: Node) => n.md;
  for (let changed = true; changed; ) {
    changed = false;
    charge(built.length, "$ref", "#");
    for (const n of built) {
      let v: number;
      switch (n.kind) {
        case "object":
          v = 1 + n.props.reduce((m, p) => (p.required ? Math.max(m, md(p.node)) : m), 0);
          break;
        case "array": {
          let need = 0;
          for (let i = 0; i < n.min; i++) {
            const e = i < n.prefix.length ? n.prefix[i]! : n.items!;
            need = Math.max(need, md(e));
            if (i >= n.prefix.length) break; // the remaining elements are all `items`
          }
          v = 1 + need;
          break;
        }
        case "anyOf":
          v = Math.min(...n.options.map(md));
          break;
        default:
          v = 1;
      }
      v = Math.min(v, UNREACHABLE);
      if (v < n.md) {
        n.md = v;
        changed = true;
      }
    }
  }
}

/** First-byte families: values of different families can never be equal. */
function family(n: Node): string {
  switch (n.kind) {
    case "object":
    case "free_object":
    case "map":
      return "object";
    case "array":
      return "array";
    case "string":
      return "string";
    case "dfa":
      return n.quoted ? "string" : "number";
    case "number":
      return "number";
    case "literal":
      return "literal";
    default:
      return "any";
  }
}

/** Literal texts of a literal node, by family ('"' string, digit/- number, t/f/n, { object, [ array). */
function literalFamily(text: Uint8Array): string {
  const b = text[0]!;
  if (b === 0x22) return "string";
  if (b === 0x7b) return "object";
  if (b === 0x5b) return "array";
  if (b === 0x2d || (b >= 0x30 && b <= 0x39)) return "number";
  return "keyword";
}

/**
 * oneOf is generated as anyOf, which is only right when no value matches two options. Options are
 * accepted as disjoint when their values start differently (object / array / string / number / literal),
 * when both are literal sets without a common text, or when both are objects with a required property
 * whose literal values (a discriminator) do not overlap. Anything else is refused: use anyOf.
 */
function checkDisjoint(options: Node[][], path: string): void {
  for (let i = 0; i < options.length; i++)
    for (let j = i + 1; j < options.length; j++)
      for (const a of options[i]!)
        for (const b of options[j]!)
          if (!disjoint(a, b))
            throw new SchemaError(
              "oneOf",
              `${path}/oneOf/${j}`,
              `options ${i} and ${j} may both match a value: use anyOf`,
            );
}

function disjoint(a: Node, b: Node): boolean {
  if (a === b) return false;
  const fa = family(a);
  const fb = family(b);
  if (fa === "any" || fb === "any") return false;
  if (fa === "literal" && fb === "literal") {
    const texts = new Set(a.kind === "literal" ? a.values.map((l) => new TextDecoder().decode(l.bytes)) : []);
    return b.kind === "literal" && b.values.every((l) => !texts.has(new TextDecoder().decode(l.bytes)));
  }
  if (fa === "literal" || fb === "literal") {
    const lit = (fa === "literal" ? a : b) as Extract<Node, { kind: "literal" }>;
    const other = fa === "literal" ? fb : fa;
    return lit.values.every((l) => literalFamily(l.bytes) !== other);
  }
  if (fa !== fb) return true;
  if (a.kind === "object" && b.kind === "object") {
    for (const p of a.props) {
      const q = b.props.find((x) => x.name === p.name);
      if (
        p.required &&
        q?.required &&
        p.node.kind === "literal" &&
        q.node.kind === "literal" &&
        disjoint(p.node, q.node)
      )
        return true;
    }
  }
  return false;
}
