/**
 * The automaton's frames (automaton.ts): what a configuration's stack is made of, and the moves every frame
 * kind shares (push, a child finishing). Frames are immutable; a stack is a linked list sharing its tail.
 */
import { ANY, type Literal, type Node, type ObjectNode } from "../../../contract/json-schema";

export type ArrayNode = Extract<Node, { kind: "array" }>;
export type StringNode = Extract<Node, { kind: "string" }>;
export type NumberNode = Extract<Node, { kind: "number" }>;
export type DfaNode = Extract<Node, { kind: "dfa" }>;

export const ROOT = 0,
  VALUE = 1,
  OBJ = 2,
  FREE = 3,
  ARR = 4,
  STR = 5,
  NUM = 6,
  LIT = 7,
  PAT = 8;
// Object / free-object / array states. KEY and VAL wait under a child frame.
export const OPEN = 0,
  COMMA = 1,
  COMMA_NS = 2,
  KEY = 3,
  COLON = 4,
  VAL = 5,
  AFTER = 6;
// String modes; UTF8 + k is inside a multi-byte character (scalars.ts utf8Next).
export const S_NORMAL = 0,
  S_ESC = 1,
  U0 = 2,
  U1 = 3,
  U1D = 4,
  U2 = 5,
  U3 = 6,
  H2 = 7,
  H3 = 8,
  NEED_BS = 9,
  NEED_U = 10,
  L0 = 11,
  L1 = 12,
  L2 = 13,
  L3 = 14,
  UTF8 = 16;
// Number states.
export const N_MINUS = 0,
  N_ZERO = 1,
  N_INT = 2,
  N_DOT = 3,
  N_FRAC = 4,
  N_E = 5,
  N_ESIGN = 6,
  N_EXP = 7;

export type Frame =
  /** `sty`: the document's separator style (separatorStyle below). */
  | { t: typeof ROOT; done: boolean; sty: number }
  /** `sp`: what may come before the value (SP_NONE ... SP_COMMA below). */
  | { t: typeof VALUE; node: Node; sp: number }
  | { t: typeof OBJ; node: ObjectNode; st: number; j: number }
  /** A free-keyed object; `v` is its values' node (ANY for json_object). */
  | { t: typeof FREE; st: number; v: Node }
  | { t: typeof ARR; node: ArrayNode; st: number; n: number }
  | { t: typeof STR; node: StringNode; n: number; m: number }
  | { t: typeof NUM; node: NumberNode; st: number; c: number }
  | { t: typeof LIT; lit: Literal; pos: number }
  /** Inside a DFA value (pattern, format, bounded number) in DFA state q. */
  | { t: typeof PAT; node: DfaNode; q: number };

export interface Stack {
  readonly f: Frame;
  readonly next: Stack | null;
  /** Frames below this one. */
  readonly d: number;
  /** Memoised key of the whole stack (frames are immutable). */
  k?: string;
  /** Memoised mask key (automaton.maskKey: counts coarsened). */
  mk?: string;
}

export const SP = 0x20,
  QUOTE = 0x22,
  BS = 0x5c,
  COMMA_B = 0x2c,
  COLON_B = 0x3a;
export const LBRACE = 0x7b,
  RBRACE = 0x7d,
  LBRACK = 0x5b,
  RBRACK = 0x5d,
  MINUS = 0x2d,
  DOT = 0x2e,
  ZERO = 0x30;

export const push = (next: Stack | null, f: Frame): Stack => ({ f, next, d: next ? next.d + 1 : 0 });
const freeFrames = (v: Node) =>
  [OPEN, COMMA, COMMA_NS, KEY, COLON, VAL, AFTER].map((st): Frame => ({ t: FREE, st, v }));
export const FREE_FRAMES = freeFrames(ANY);
const mapFrames = new WeakMap<Node, Frame[]>();
/** The free-object frame in state st for values of node v (one frame per pair). */
export function freeFrame(v: Node, st: number): Frame {
  if (v === ANY) return FREE_FRAMES[st]!;
  let fs = mapFrames.get(v);
  if (!fs) mapFrames.set(v, (fs = freeFrames(v)));
  return fs[st]!;
}
/**
 * Whitespace before a value: none; one optional space at the document's start (SentencePiece's "▁{");
 * one space or none after ':', and after ',' (objects' keys follow the same rule, automaton.ts).
 */
export const SP_NONE = 0,
  SP_FREE = 1,
  SP_COLON = 2,
  SP_COMMA = 3;

/**
 * A document's separator style, kept in its ROOT frame: for ':' and for ',' separately, unset, spaced or tight.
 * The first ':' and the first ',' decide, and every later one follows, as one writer (json.dumps, JSON.stringify)
 * would. A consistent style is what lets a forced run span `", "key": "` (jump-forward) instead of stopping at
 * every optional space.
 */
export const UNSET = 0,
  SPACED = 1,
  TIGHT = 2;
export const COLON_SEP = 0,
  COMMA_SEP = 1;
export const separatorStyle = (sty: number, sep: number): number => (sep === COLON_SEP ? sty % 3 : Math.floor(sty / 3));
export const withSeparatorStyle = (sty: number, sep: number, style: number): number =>
  sep === COLON_SEP ? sty - (sty % 3) + style : (sty % 3) + 3 * style;
const rootFrames = Array.from({ length: 18 }, (_, i): Frame => ({ t: ROOT, done: i >= 9, sty: i % 9 }));
export const rootFrame = (done: boolean, sty: number): Frame => rootFrames[(done ? 9 : 0) + sty]!;
export const ROOT_OPEN = rootFrame(false, 0);

const valueFrames = new WeakMap<Node, Frame[]>();
/** Value frames carry no per-position data: one per node and whitespace rule. */
export function valueFrame(node: Node, sp: number): Frame {
  let fs = valueFrames.get(node);
  if (!fs)
    valueFrames.set(node, (fs = [SP_NONE, SP_FREE, SP_COLON, SP_COMMA].map((sp): Frame => ({ t: VALUE, node, sp }))));
  return fs[sp]!;
}

/** The parent (under a finished child) moves on. */
export function childDone(parent: Stack): Stack {
  const f = parent.f;
  switch (f.t) {
    case ROOT:
      return push(parent.next, rootFrame(true, f.sty));
    case OBJ:
      return push(parent.next, { t: OBJ, node: f.node, st: f.st === KEY ? COLON : AFTER, j: f.j });
    case FREE:
      return push(parent.next, freeFrame(f.v, f.st === KEY ? COLON : AFTER));
    case ARR: {
      const n = f.n + 1;
      return push(parent.next, { t: ARR, node: f.node, st: AFTER, n: Math.min(n, arrayCountCap(f.node)) });
    }
    default:
      throw new Error(`frame ${f.t} cannot have a child`);
  }
}

/** Element counts only matter up to the larger finite bound and the tuple's length; capping keeps keys finite. */
export const arrayCountCap = (n: ArrayNode) => Math.max(n.prefix.length, n.max === Infinity ? n.min : n.max);
/** The node of element n. */
export const elementNode = (a: ArrayNode, n: number): Node => (n < a.prefix.length ? a.prefix[n]! : a.items!);

export const isDigit = (b: number) => b >= 0x30 && b <= 0x39;
