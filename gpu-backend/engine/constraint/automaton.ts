/**
 * A byte-level pushdown recognizer for the grammars of contract/json-schema.ts (frames in frames.ts,
 * strings and numbers in scalars.ts).
 *
 * A configuration is an immutable stack of frames (a linked list sharing its tail), so the token-mask walk
 * (token-mask.ts) can branch from one configuration over many tokens without copying. A state is a small
 * set of configurations: anyOf, enums and optional object keys are followed in parallel until the bytes
 * tell them apart. Whitespace is bounded: one optional space at the very start (SentencePiece's "▁{"), after
 * ':' and after ','; nowhere else. The first ':' and the first ',' fix whether their kind is followed by a
 * space for the rest of the document (frames.ts separatorStyle). Strings must be valid UTF-8 with well-formed
 * escapes (\u surrogates only in high-low pairs), so the output is always well-formed Unicode.
 */
import {
  ANY_ARRAY,
  MAX_NESTING,
  ANY_NUMBER,
  ANY_SCALAR_LITERALS,
  ANY_STRING,
  type Grammar,
  type Node,
  type ObjectNode,
} from "../../../contract/json-schema";
import {
  AFTER,
  ARR,
  childDone,
  type DfaNode,
  elementNode,
  freeFrame,
  COLON,
  COLON_B,
  COLON_SEP,
  COMMA,
  COMMA_SEP,
  COMMA_B,
  COMMA_NS,
  FREE,
  FREE_FRAMES,
  isDigit,
  KEY,
  LBRACE,
  LBRACK,
  LIT,
  MINUS,
  N_INT,
  N_MINUS,
  N_ZERO,
  NUM,
  OBJ,
  OPEN,
  PAT,
  push,
  QUOTE,
  RBRACE,
  RBRACK,
  ROOT,
  ROOT_OPEN,
  rootFrame,
  separatorStyle,
  SP_COLON,
  SP_COMMA,
  SP_FREE,
  SP_NONE,
  SPACED,
  TIGHT,
  UNSET,
  withSeparatorStyle,
  S_NORMAL,
  SP,
  STR,
  VAL,
  VALUE,
  valueFrame,
  ZERO,
  type ArrayNode,
  type Frame,
  type Stack,
  type StringNode,
} from "./frames";
import { numberEnds, stepNumber, stepString } from "./scalars";
import { type State, stackKey } from "./state-keys";

export type { Stack };

export type { State };

/**
 * Free-form values ("any": json_object's values) open no container this deep in the stack (about 30
 * levels of nesting): a random model cannot grow the state, and its mask keys, without bound.
 */
export const MAX_FREE_DEPTH = 32;

export function initialState(g: Grammar): State {
  return [push(push(null, ROOT_OPEN), valueFrame(g.root, SP_FREE))];
}

/** Consumes one byte in every configuration; appends the survivors to `out`. */
export function step(s: Stack, b: number, out: Stack[]): void {
  const f = s.f;
  switch (f.t) {
    case ROOT:
      return; // a finished document takes nothing more (an unfinished root is always under a value)
    case VALUE:
      startValue(f.node, s.next!, b, f.sp, out);
      return;
    case OBJ:
      stepObject(f, s, b, out);
      return;
    case FREE:
      stepFree(f.st, f.v, s, b, out);
      return;
    case ARR:
      stepArray(f, s, b, out);
      return;
    case STR:
      stepString(f, s, b, out);
      return;
    case NUM:
      if (stepNumber(f, s, b, out)) step(childDone(s.next!), b, out); // the number ended before b
      return;
    case LIT:
      if (f.lit.bytes[f.pos] !== b) return;
      if (f.pos + 1 === f.lit.bytes.length) out.push(childDone(s.next!));
      else out.push(push(s.next, { t: LIT, lit: f.lit, pos: f.pos + 1 }));
      return;
    case PAT:
      stepDfa(f.node, f.q, s.next!, b, out);
  }
}

function stepDfa(node: DfaNode, q: number, rest: Stack, b: number, out: Stack[]): void {
  const d = node.dfa;
  if (node.quoted && b === QUOTE) {
    if (d.accept[q]) out.push(childDone(rest));
    return;
  }
  const c = d.classOf[b]!;
  const to = c === 255 ? -1 : d.trans[q * d.classes + c]!;
  if (to >= 0) out.push(push(rest, { t: PAT, node, q: to }));
  else if (!node.quoted && d.accept[q]) step(childDone(rest), b, out); // the number ended before b
}

/** The configuration is a complete document (a trailing number ends at end of input). */
export function accepting(s: Stack): boolean {
  const f = s.f;
  if (f.t === ROOT) return f.done;
  if (f.t === NUM && numberEnds(f.st)) return accepting(childDone(s.next!));
  if (f.t === PAT && !f.node.quoted && f.node.dfa.accept[f.q]) return accepting(childDone(s.next!));
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
 * The DFA frame on top of the configuration when it is inside a quoted pattern or format. A plain token (no
 * quote, backslash or control byte) then only steps that DFA, whatever is below: the mask walk takes those
 * tokens from a per-DFA-state bitset (token-mask.ts) and walks only the others.
 */
export function quotedPattern(s: Stack): { node: DfaNode; q: number } | null {
  const f = s.f;
  return f.t === PAT && f.node.quoted ? f : null;
}

/**
 * A state keeps at most this many configurations (the first ones, after each token). Overlapping anyOf
 * options could otherwise multiply them from token to token; dropping some only narrows what may be
 * generated, and masks are computed from the state as kept, so they and advance() always agree.
 */
export const MAX_CONFIGS = 64;

/**
 * Configurations alive between two bytes of one token. Nested unions opened inside one token could
 * otherwise multiply them (options x options); past this many they are merged and the first ones kept.
 * The mask walk (token-mask.ts) applies the same rule byte by byte, so what it allows advance() accepts.
 */
export const MAX_LIVE = 256;

/** The survivors of one byte, bounded by MAX_LIVE (see there). */
export function stepAll(configs: readonly Stack[], b: number, out: Stack[]): void {
  for (let i = 0; i < configs.length; i++) step(configs[i]!, b, out);
  if (out.length > MAX_LIVE) {
    const kept = dedupe(out.slice());
    out.length = 0;
    for (let i = 0; i < kept.length && i < MAX_LIVE; i++) out.push(kept[i]!);
  }
}

/** Consumes `bytes` from `state`; null when no configuration survives. Duplicates are merged. */
export function advance(state: State, bytes: Uint8Array): State | null {
  let cur: Stack[] = state as Stack[];
  for (const b of bytes) {
    const next: Stack[] = [];
    stepAll(cur, b, next);
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

/** The separator style the document has fixed so far (frames.ts): read from its ROOT frame. */
function styleOf(s: Stack, sep: number): number {
  let r = s;
  while (r.next) r = r.next;
  return separatorStyle((r.f as Extract<Frame, { t: typeof ROOT }>).sty, sep);
}

/** The same stack with the document's style for `sep` fixed (its frames re-pushed over a new ROOT frame). */
function fixStyle(s: Stack, sep: number, style: number): Stack {
  const frames: Frame[] = [];
  for (let r: Stack | null = s; r; r = r.next) frames.push(r.f);
  const root = frames.pop() as Extract<Frame, { t: typeof ROOT }>;
  let out = push(null, rootFrame(root.done, withSeparatorStyle(root.sty, sep, style)));
  for (let i = frames.length - 1; i >= 0; i--) out = push(out, frames[i]!);
  return out;
}

/**
 * Whether byte b may follow a separator of kind `sep` (SP: the optional space; anything else: no space), and
 * the stack to continue on (with the style fixed when this separator is the document's first of its kind).
 */
function afterSeparator(rest: Stack, sep: number, b: number): Stack | null {
  const style = styleOf(rest, sep);
  const spaced = b === SP;
  if (style === UNSET) return fixStyle(rest, sep, spaced ? SPACED : TIGHT);
  return (style === SPACED) === spaced ? rest : null;
}

function startValue(node: Node, rest: Stack, b: number, sp: number, out: Stack[]): void {
  if (sp === SP_COLON || sp === SP_COMMA) {
    const r = afterSeparator(rest, sp === SP_COLON ? COLON_SEP : COMMA_SEP, b);
    if (!r) return;
    rest = r;
  }
  if (b === SP && sp !== SP_NONE) {
    out.push(push(rest, valueFrame(node, SP_NONE)));
    return;
  }
  // Room to finish what is started: recursion stops at MAX_NESTING (free-form values bound themselves).
  if (rest.d + node.md > MAX_NESTING) return;
  switch (node.kind) {
    case "any":
      if (b === LBRACE || b === LBRACK) {
        if (rest.d >= MAX_FREE_DEPTH) return;
        out.push(
          push(rest, b === LBRACE ? FREE_FRAMES[OPEN]! : { t: ARR, node: ANY_ARRAY as ArrayNode, st: OPEN, n: 0 }),
        );
      } else if (b === QUOTE) out.push(push(rest, { t: STR, node: ANY_STRING as StringNode, n: 0, m: S_NORMAL }));
      else if (b === MINUS || isDigit(b)) startValue(ANY_NUMBER, rest, b, SP_NONE, out);
      else startValue(ANY_SCALAR_LITERALS, rest, b, SP_NONE, out);
      return;
    case "free_object":
      if (b === LBRACE) out.push(push(rest, FREE_FRAMES[OPEN]!));
      return;
    case "map":
      if (b === LBRACE) out.push(push(rest, freeFrame(node.values, OPEN)));
      return;
    case "dfa":
      if (node.quoted) {
        if (b === QUOTE) out.push(push(rest, { t: PAT, node, q: 0 }));
      } else {
        const c = node.dfa.classOf[b]!;
        const to = c === 255 ? -1 : node.dfa.trans[c]!;
        if (to >= 0) out.push(push(rest, { t: PAT, node, q: to }));
      }
      return;
    case "ref":
      throw new Error("a grammar's references are linked when it is compiled");
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
      for (const o of node.options) startValue(o, rest, b, SP_NONE, out);
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
    case COMMA: {
      const r = afterSeparator(rest, COMMA_SEP, b);
      if (!r) return;
      if (b === SP) out.push(push(r, { t: OBJ, node, st: COMMA_NS, j: f.j }));
      else startKey(node, r, f.j, b, out);
      return;
    }
    case COMMA_NS:
      startKey(node, rest, f.j, b, out);
      return;
    case COLON:
      if (b === COLON_B)
        out.push(push(push(rest, { t: OBJ, node, st: VAL, j: f.j }), valueFrame(node.props[f.j]!.node, SP_COLON)));
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
    // An optional value with no room to finish is not started (a required one always has room).
    const fits = p.required || rest.d + 1 + p.node.md <= MAX_NESTING;
    if (fits && p.key.bytes[0] === b)
      out.push(push(push(rest, { t: OBJ, node, st: KEY, j: k }), { t: LIT, lit: p.key, pos: 1 }));
    if (p.required) return;
  }
}

function stepFree(st: number, v: Node, s: Stack, b: number, out: Stack[]): void {
  let rest = s.next!;
  const key = () => {
    if (rest.d + 1 + v.md > MAX_NESTING) return; // no room for a value: the object stays empty
    out.push(push(push(rest, freeFrame(v, KEY)), { t: STR, node: ANY_STRING as StringNode, n: 0, m: S_NORMAL }));
  };
  switch (st) {
    case OPEN:
      if (b === RBRACE) out.push(childDone(rest));
      else if (b === QUOTE) key();
      return;
    case COMMA: {
      const r = afterSeparator(rest, COMMA_SEP, b);
      if (!r) return;
      rest = r;
      if (b === SP) out.push(push(rest, freeFrame(v, COMMA_NS)));
      else if (b === QUOTE) key();
      return;
    }
    case COMMA_NS:
      if (b === QUOTE) key();
      return;
    case COLON:
      if (b === COLON_B) out.push(push(push(rest, freeFrame(v, VAL)), valueFrame(v, SP_COLON)));
      return;
    case AFTER:
      if (b === COMMA_B) out.push(push(rest, freeFrame(v, COMMA)));
      else if (b === RBRACE) out.push(childDone(rest));
  }
}

function stepArray(f: Extract<Frame, { t: typeof ARR }>, s: Stack, b: number, out: Stack[]): void {
  const node = f.node;
  const rest = s.next!;
  if (f.st === OPEN) {
    if (b === RBRACK && node.min === 0) out.push(childDone(rest));
    else if (node.max > 0)
      startValue(elementNode(node, 0), push(rest, { t: ARR, node, st: VAL, n: 0 }), b, SP_NONE, out);
  } else if (f.st === AFTER) {
    if (b === COMMA_B && f.n < node.max) {
      const e = elementNode(node, f.n);
      if (rest.d + 1 + e.md <= MAX_NESTING)
        out.push(push(push(rest, { t: ARR, node, st: VAL, n: f.n }), valueFrame(e, SP_COMMA)));
    } else if (b === RBRACK && f.n >= node.min) out.push(childDone(rest));
  }
}
