/**
 * A byte-level pushdown recognizer for the grammars of schema.ts.
 *
 * A configuration is an immutable stack of frames (a linked list sharing its tail), so the token-mask walk
 * (token-mask.ts) can branch from one configuration over many tokens without copying. A state is a small
 * set of configurations: anyOf, enums and optional object keys are followed in parallel until the bytes
 * tell them apart. Whitespace is bounded: one optional space at the very start (SentencePiece's "▁{"), after
 * ':' and after ','; nowhere else. Strings must be valid UTF-8 with well-formed escapes (\u surrogates only
 * in high-low pairs), so the output is always well-formed Unicode.
 */
import { ANY, ANY_ARRAY, ANY_NUMBER, ANY_SCALAR_LITERALS, ANY_STRING, type Grammar, type Literal, type Node, type ObjectNode } from "../../../contract/json-schema";

type ArrayNode = Extract<Node, { kind: "array" }>;
type StringNode = Extract<Node, { kind: "string" }>;
type NumberNode = Extract<Node, { kind: "number" }>;

const ROOT = 0, VALUE = 1, OBJ = 2, FREE = 3, ARR = 4, STR = 5, NUM = 6, LIT = 7;
// Object / free-object / array states. KEY and VAL wait under a child frame.
const OPEN = 0, COMMA = 1, COMMA_NS = 2, KEY = 3, COLON = 4, VAL = 5, AFTER = 6;
// String modes; UTF8 + k is inside a multi-byte character (see utf8Next).
const S_NORMAL = 0, S_ESC = 1, U0 = 2, U1 = 3, U1D = 4, U2 = 5, U3 = 6, H2 = 7, H3 = 8, NEED_BS = 9, NEED_U = 10, L0 = 11, L1 = 12, L2 = 13, L3 = 14, UTF8 = 16;
// Number states.
const N_MINUS = 0, N_ZERO = 1, N_INT = 2, N_DOT = 3, N_FRAC = 4, N_E = 5, N_ESIGN = 6, N_EXP = 7;
const MAX_INT_DIGITS = 15, MAX_FRAC_DIGITS = 15, MAX_EXP_DIGITS = 2;

type Frame =
  | { t: typeof ROOT; done: boolean }
  | { t: typeof VALUE; node: Node; sp: boolean }
  | { t: typeof OBJ; node: ObjectNode; st: number; j: number }
  | { t: typeof FREE; st: number }
  | { t: typeof ARR; node: ArrayNode; st: number; n: number }
  | { t: typeof STR; node: StringNode; n: number; m: number }
  | { t: typeof NUM; node: NumberNode; st: number; c: number }
  | { t: typeof LIT; lit: Literal; pos: number };

export interface Stack {
  readonly f: Frame;
  readonly next: Stack | null;
  /** Frames below this one. */
  readonly d: number;
  /** Memoised key of the whole stack (frames are immutable). */
  k?: string;
}

/** A parser state: the configurations still alive. Never empty for a live state. */
export type State = readonly Stack[];

const SP = 0x20, QUOTE = 0x22, BS = 0x5c, COMMA_B = 0x2c, COLON_B = 0x3a;
const LBRACE = 0x7b, RBRACE = 0x7d, LBRACK = 0x5b, RBRACK = 0x5d, MINUS = 0x2d, DOT = 0x2e, ZERO = 0x30;

const push = (next: Stack | null, f: Frame): Stack => ({ f, next, d: next ? next.d + 1 : 0 });
/**
 * Free-form values ("any": json_object's values) open no container this deep in the stack (about 30
 * levels of nesting): a random model cannot grow the state, and its mask keys, without bound.
 */
export const MAX_FREE_DEPTH = 32;
const FREE_FRAMES = [OPEN, COMMA, COMMA_NS, KEY, COLON, VAL, AFTER].map((st): Frame => ({ t: FREE, st }));
const ROOT_OPEN: Frame = { t: ROOT, done: false };
const ROOT_DONE: Frame = { t: ROOT, done: true };
const valueFrames = new WeakMap<Node, [Frame, Frame]>();
/** Value frames carry no per-position data: one pair per node. */
function valueFrame(node: Node, sp: boolean): Frame {
  let pair = valueFrames.get(node);
  if (!pair) valueFrames.set(node, (pair = [{ t: VALUE, node, sp: false }, { t: VALUE, node, sp: true }]));
  return pair[sp ? 1 : 0];
}

export function initialState(g: Grammar): State {
  return [push(push(null, ROOT_OPEN), valueFrame(g.root, true))];
}

/** Consumes one byte in every configuration; appends the survivors to `out`. */
export function step(s: Stack, b: number, out: Stack[]): void {
  const f = s.f;
  switch (f.t) {
    case ROOT:
      return; // a finished document takes nothing more (an unfinished root is always under a value)
    case VALUE:
      return startValue(f.node, s.next!, b, f.sp, out);
    case OBJ:
      return stepObject(f, s, b, out);
    case FREE:
      return stepFree(f.st, s, b, out);
    case ARR:
      return stepArray(f, s, b, out);
    case STR:
      return stepString(f, s, b, out);
    case NUM:
      return stepNumber(f, s, b, out);
    case LIT:
      if (f.lit.bytes[f.pos] !== b) return;
      if (f.pos + 1 === f.lit.bytes.length) out.push(childDone(s.next!));
      else out.push(push(s.next, { t: LIT, lit: f.lit, pos: f.pos + 1 }));
  }
}

/** The configuration is a complete document (a trailing number ends at end of input). */
export function accepting(s: Stack): boolean {
  const f = s.f;
  if (f.t === ROOT) return f.done;
  if (f.t === NUM && numberEnds(f.st)) return accepting(childDone(s.next!));
  return false;
}

/**
 * How many more code points the configuration's string may take, when its top is a string between
 * characters (Infinity when unbounded); -1 otherwise. Plain characters (no quote, backslash or control) then
 * only advance the count, whatever is below: the mask walk uses this to skip them (token-mask.ts).
 */
export function stringRoom(s: Stack): number {
  const f = s.f;
  if (f.t !== STR || f.m !== S_NORMAL) return -1;
  return f.node.max === Infinity ? Infinity : f.node.max - f.n;
}

/**
 * A state keeps at most this many configurations (the first ones, after each token). Overlapping anyOf
 * options could otherwise multiply them from token to token; dropping some only narrows what may be
 * generated, and masks are computed from the state as kept, so they and advance() always agree.
 */
export const MAX_CONFIGS = 64;

/** Consumes `bytes` from `state`; null when no configuration survives. Duplicates are merged. */
export function advance(state: State, bytes: Uint8Array): State | null {
  let cur: Stack[] = state as Stack[];
  for (const b of bytes) {
    const next: Stack[] = [];
    for (const s of cur) step(s, b, next);
    if (next.length === 0) return null;
    cur = next;
  }
  const kept = dedupe(cur);
  return kept.length > MAX_CONFIGS ? kept.slice(0, MAX_CONFIGS) : kept;
}

export function dedupe(configs: Stack[]): Stack[] {
  if (configs.length < 2) return configs;
  const seen = new Map<string, Stack>();
  for (const s of configs) seen.set(stackKey(s), s);
  return [...seen.values()];
}

/** Everything that decides what the state accepts from here on, as a string (the mask cache key). */
export function stateKey(state: State): string {
  if (state.length === 1) return stackKey(state[0]!);
  return state.map(stackKey).sort().join("|");
}

function stackKey(s: Stack): string {
  if (s.k !== undefined) return s.k;
  const own = frameKey(s.f);
  return (s.k = s.next ? `${own}/${stackKey(s.next)}` : own);
}

function frameKey(f: Frame): string {
  switch (f.t) {
    case ROOT:
      return f.done ? "R1" : "R0";
    case VALUE:
      return `V${f.node.id}${f.sp ? "s" : ""}`;
    case OBJ:
      return `O${f.node.id}.${f.st}.${f.j}`;
    case FREE:
      return `F${f.st}`;
    case ARR:
      return `A${f.node.id}.${f.st}.${f.n}`;
    case STR:
      return `S${f.node.id}.${f.n}.${f.m}`;
    case NUM:
      return `N${f.node.id}.${f.st}.${f.c}`;
    case LIT:
      return `L${f.lit.id}.${f.pos}`;
  }
}

/** The parent (under a finished child) moves on. */
function childDone(parent: Stack): Stack {
  const f = parent.f;
  switch (f.t) {
    case ROOT:
      return push(parent.next, ROOT_DONE);
    case OBJ:
      return push(parent.next, { t: OBJ, node: f.node, st: f.st === KEY ? COLON : AFTER, j: f.j });
    case FREE:
      return push(parent.next, FREE_FRAMES[f.st === KEY ? COLON : AFTER]!);
    case ARR: {
      const n = f.n + 1;
      return push(parent.next, { t: ARR, node: f.node, st: AFTER, n: Math.min(n, arrayCountCap(f.node)) });
    }
    default:
      throw new Error(`frame ${f.t} cannot have a child`);
  }
}

function startValue(node: Node, rest: Stack, b: number, sp: boolean, out: Stack[]): void {
  if (b === SP && sp) {
    out.push(push(rest, valueFrame(node, false)));
    return;
  }
  switch (node.kind) {
    case "any":
      if (b === LBRACE || b === LBRACK) {
        if (rest.d >= MAX_FREE_DEPTH) return;
        out.push(push(rest, b === LBRACE ? FREE_FRAMES[OPEN]! : { t: ARR, node: ANY_ARRAY as ArrayNode, st: OPEN, n: 0 }));
      }
      else if (b === QUOTE) out.push(push(rest, { t: STR, node: ANY_STRING as StringNode, n: 0, m: S_NORMAL }));
      else if (b === MINUS || isDigit(b)) startValue(ANY_NUMBER, rest, b, false, out);
      else startValue(ANY_SCALAR_LITERALS, rest, b, false, out);
      return;
    case "free_object":
      if (b === LBRACE) out.push(push(rest, FREE_FRAMES[OPEN]!));
      return;
    case "object":
      if (b === LBRACE) out.push(push(rest, { t: OBJ, node, st: OPEN, j: 0 }));
      return;
    case "array":
      if (b === LBRACK) out.push(push(rest, { t: ARR, node, st: OPEN, n: 0 }));
      return;
    case "string":
      if (b === QUOTE) out.push(push(rest, { t: STR, node, n: 0, m: S_NORMAL }));
      return;
    case "number":
      if (b === MINUS) out.push(push(rest, { t: NUM, node, st: N_MINUS, c: 0 }));
      else if (b === ZERO) out.push(push(rest, { t: NUM, node, st: N_ZERO, c: 1 }));
      else if (isDigit(b)) out.push(push(rest, { t: NUM, node, st: N_INT, c: 1 }));
      return;
    case "literal":
      for (const lit of node.values) {
        if (lit.bytes[0] !== b) continue;
        out.push(lit.bytes.length === 1 ? childDone(rest) : push(rest, { t: LIT, lit, pos: 1 }));
      }
      return;
    case "anyOf":
      for (const o of node.options) startValue(o, rest, b, false, out);
  }
}

function stepObject(f: Extract<Frame, { t: typeof OBJ }>, s: Stack, b: number, out: Stack[]): void {
  const node = f.node;
  const rest = s.next!;
  switch (f.st) {
    case OPEN:
      if (b === RBRACE && f.j > node.lastRequired) out.push(childDone(rest));
      else startKey(node, rest, f.j, b, out);
      return;
    case COMMA:
      if (b === SP) out.push(push(rest, { t: OBJ, node, st: COMMA_NS, j: f.j }));
      else startKey(node, rest, f.j, b, out);
      return;
    case COMMA_NS:
      return startKey(node, rest, f.j, b, out);
    case COLON:
      if (b === COLON_B) out.push(push(push(rest, { t: OBJ, node, st: VAL, j: f.j }), valueFrame(node.props[f.j]!.node, true)));
      return;
    case AFTER:
      if (b === COMMA_B && f.j + 1 < node.props.length) out.push(push(rest, { t: OBJ, node, st: COMMA, j: f.j + 1 }));
      else if (b === RBRACE && f.j + 1 > node.lastRequired) out.push(childDone(rest));
  }
}

/** Keys that may come next: properties from `from` up to and including the first required one. */
function startKey(node: ObjectNode, rest: Stack, from: number, b: number, out: Stack[]): void {
  for (let k = from; k < node.props.length; k++) {
    const p = node.props[k]!;
    if (p.key.bytes[0] === b) out.push(push(push(rest, { t: OBJ, node, st: KEY, j: k }), { t: LIT, lit: p.key, pos: 1 }));
    if (p.required) return;
  }
}

function stepFree(st: number, s: Stack, b: number, out: Stack[]): void {
  const rest = s.next!;
  const key = () => out.push(push(push(rest, FREE_FRAMES[KEY]!), { t: STR, node: ANY_STRING as StringNode, n: 0, m: S_NORMAL }));
  switch (st) {
    case OPEN:
      if (b === RBRACE) out.push(childDone(rest));
      else if (b === QUOTE) key();
      return;
    case COMMA:
      if (b === SP) out.push(push(rest, FREE_FRAMES[COMMA_NS]!));
      else if (b === QUOTE) key();
      return;
    case COMMA_NS:
      if (b === QUOTE) key();
      return;
    case COLON:
      if (b === COLON_B) out.push(push(push(rest, FREE_FRAMES[VAL]!), valueFrame(ANY, true)));
      return;
    case AFTER:
      if (b === COMMA_B) out.push(push(rest, FREE_FRAMES[COMMA]!));
      else if (b === RBRACE) out.push(childDone(rest));
  }
}

/** Element counts only matter up to the larger finite bound; capping keeps the key space finite. */
const arrayCountCap = (n: ArrayNode) => (n.max === Infinity ? n.min : n.max);

function stepArray(f: Extract<Frame, { t: typeof ARR }>, s: Stack, b: number, out: Stack[]): void {
  const node = f.node;
  const rest = s.next!;
  if (f.st === OPEN) {
    if (b === RBRACK && node.min === 0) out.push(childDone(rest));
    else if (node.max > 0) startValue(node.items, push(rest, { t: ARR, node, st: VAL, n: 0 }), b, false, out);
  } else if (f.st === AFTER) {
    if (b === COMMA_B && f.n < node.max) out.push(push(push(rest, { t: ARR, node, st: VAL, n: f.n }), valueFrame(node.items, true)));
    else if (b === RBRACK && f.n >= node.min) out.push(childDone(rest));
  }
}

const isDigit = (b: number) => b >= 0x30 && b <= 0x39;
const isHex = (b: number) => isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);
/** After one more hex digit of a \\u escape. */
const HEX_NEXT: Record<number, number> = { [U1]: U2, [U2]: U3, [U3]: S_NORMAL, [H2]: H3, [H3]: NEED_BS, [L2]: L3, [L3]: S_NORMAL };
const ESCAPES = new Set([0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74]);

function stepString(f: Extract<Frame, { t: typeof STR }>, s: Stack, b: number, out: Stack[]): void {
  const node = f.node;
  const bounded = node.min > 0 || node.max !== Infinity;
  // An unbounded string keeps no count: plain characters leave the frame (and the stack) unchanged. A
  // bounded one counts code points up to its larger finite bound (the key space stays finite).
  const to = (m: number, count: boolean) => {
    const n = count && bounded ? Math.min(f.n + 1, node.max === Infinity ? node.min : node.max) : f.n;
    out.push(n === f.n && m === f.m ? s : push(s.next, { t: STR, node, n, m }));
  };
  const room = !bounded || f.n < node.max;
  const m = f.m;
  if (m === S_NORMAL) {
    if (b === QUOTE) {
      if (f.n >= node.min) out.push(childDone(s.next!));
    } else if (b < 0x20 || !room) return;
    else if (b === BS) to(S_ESC, true);
    else if (b < 0x80) to(S_NORMAL, true);
    else {
      const u = utf8Lead(b);
      if (u > 0) to(UTF8 + u, true);
    }
    return;
  }
  if (m >= UTF8) {
    const u = utf8Next(m - UTF8, b);
    if (u >= 0) to(u === 0 ? S_NORMAL : UTF8 + u, false);
    return;
  }
  switch (m) {
    case S_ESC:
      if (ESCAPES.has(b)) to(S_NORMAL, false);
      else if (b === 0x75) to(U0, false);
      return;
    case U0:
      if (b === 0x44 || b === 0x64) to(U1D, false);
      else if (isHex(b)) to(U1, false);
      return;
    case U1D: // \uD8..\uDB starts a high surrogate; \uDC..\uDF (a lone low one) is refused
      if (b >= 0x30 && b <= 0x37) to(U2, false);
      else if (b === 0x38 || b === 0x39 || b === 0x41 || b === 0x42 || b === 0x61 || b === 0x62) to(H2, false);
      return;
    case U1:
    case U2:
    case U3:
    case H2:
    case H3:
    case L2:
    case L3:
      if (isHex(b)) to(HEX_NEXT[m]!, false);
      return;
    case NEED_BS:
      if (b === BS) to(NEED_U, false);
      return;
    case NEED_U:
      if (b === 0x75) to(L0, false);
      return;
    case L0:
      if (b === 0x44 || b === 0x64) to(L1, false);
      return;
    case L1:
      if ((b >= 0x43 && b <= 0x46) || (b >= 0x63 && b <= 0x66)) to(L2, false);
  }
}

/**
 * UTF-8 continuation states (RFC 3629 table): 1 = one more of 80..BF; 2 = two more, 80..BF first;
 * 3 = two more, A0..BF first (E0); 4 = two more, 80..9F first (ED: no surrogates); 5 = three more, 80..BF
 * first; 6 = three more, 90..BF first (F0); 7 = three more, 80..8F first (F4: nothing above U+10FFFF).
 */
function utf8Lead(b: number): number {
  if (b >= 0xc2 && b <= 0xdf) return 1;
  if (b === 0xe0) return 3;
  if (b === 0xed) return 4;
  if (b >= 0xe1 && b <= 0xef) return 2;
  if (b === 0xf0) return 6;
  if (b >= 0xf1 && b <= 0xf3) return 5;
  if (b === 0xf4) return 7;
  return 0;
}

/** Next continuation state after byte b (0 = character complete), or -1 when b is not allowed. */
function utf8Next(u: number, b: number): number {
  const lo = u === 3 ? 0xa0 : u === 6 ? 0x90 : 0x80;
  const hi = u === 4 ? 0x9f : u === 7 ? 0x8f : 0xbf;
  if (b < lo || b > hi) return -1;
  return u === 1 ? 0 : u <= 4 ? 1 : 2;
}

const numberEnds = (st: number) => st === N_ZERO || st === N_INT || st === N_FRAC || st === N_EXP;

function stepNumber(f: Extract<Frame, { t: typeof NUM }>, s: Stack, b: number, out: Stack[]): void {
  const node = f.node;
  const to = (st: number, c: number): void => void out.push(push(s.next, { t: NUM, node, st, c }));
  const int = node.integer;
  switch (f.st) {
    case N_MINUS:
      if (b === ZERO) return to(N_ZERO, 1);
      if (isDigit(b)) return to(N_INT, 1);
      return;
    case N_INT:
      if (isDigit(b) && f.c < MAX_INT_DIGITS) return to(N_INT, f.c + 1);
    // falls through: the integer part may end here
    case N_ZERO:
      if (!int && b === DOT) return to(N_DOT, 0);
      if (!int && (b === 0x65 || b === 0x45)) return to(N_E, 0);
      break;
    case N_DOT:
      if (isDigit(b)) to(N_FRAC, 1);
      return;
    case N_FRAC:
      if (isDigit(b) && f.c < MAX_FRAC_DIGITS) return to(N_FRAC, f.c + 1);
      if (b === 0x65 || b === 0x45) return to(N_E, 0);
      break;
    case N_E:
      if (b === 0x2b || b === MINUS) return to(N_ESIGN, 0);
      if (isDigit(b)) return to(N_EXP, 1);
      return;
    case N_ESIGN:
      if (isDigit(b)) to(N_EXP, 1);
      return;
    case N_EXP:
      if (isDigit(b) && f.c < MAX_EXP_DIGITS) return to(N_EXP, f.c + 1);
      break;
  }
  // The number ended before b: the parent takes b.
  step(childDone(s.next!), b, out);
}
