/**
 * A byte-level pushdown recognizer for the grammars of contract/json-schema.ts (frames in frames.ts,
 * strings and numbers in scalars.ts).
 *
 * A configuration is an immutable stack of frames (a linked list sharing its tail), so the token-mask walk
 * (token-mask.ts) can branch from one configuration over many tokens without copying. A state is a small
 * set of configurations: anyOf, enums and optional object keys are followed in parallel until the bytes
 * tell them apart. Whitespace is bounded: one optional space at the very start (SentencePiece's "▁{"), after
 * ':' and after ','; nowhere else. Strings must be valid UTF-8 with well-formed escapes (\u surrogates only
 * in high-low pairs), so the output is always well-formed Unicode.
 */
import {
  ANY,
  ANY_ARRAY,
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
  COLON,
  COLON_B,
  COMMA,
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
  push,
  QUOTE,
  RBRACE,
  RBRACK,
  ROOT,
  ROOT_OPEN,
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

export type { Stack };

/** A parser state: the configurations still alive. Never empty for a live state. */
export type State = readonly Stack[];

/**
 * Free-form values ("any": json_object's values) open no container this deep in the stack (about 30
 * levels of nesting): a random model cannot grow the state, and its mask keys, without bound.
 */
export const MAX_FREE_DEPTH = 32;

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
      startValue(f.node, s.next!, b, f.sp, out);
      return;
    case OBJ:
      stepObject(f, s, b, out);
      return;
    case FREE:
      stepFree(f.st, s, b, out);
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

function startValue(node: Node, rest: Stack, b: number, sp: boolean, out: Stack[]): void {
  if (b === SP && sp) {
    out.push(push(rest, valueFrame(node, false)));
    return;
  }
  switch (node.kind) {
    case "any":
      if (b === LBRACE || b === LBRACK) {
        if (rest.d >= MAX_FREE_DEPTH) return;
        out.push(
          push(rest, b === LBRACE ? FREE_FRAMES[OPEN]! : { t: ARR, node: ANY_ARRAY as ArrayNode, st: OPEN, n: 0 }),
        );
      } else if (b === QUOTE) out.push(push(rest, { t: STR, node: ANY_STRING as StringNode, n: 0, m: S_NORMAL }));
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
      startKey(node, rest, f.j, b, out);
      return;
    case COLON:
      if (b === COLON_B)
        out.push(push(push(rest, { t: OBJ, node, st: VAL, j: f.j }), valueFrame(node.props[f.j]!.node, true)));
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
    if (p.key.bytes[0] === b)
      out.push(push(push(rest, { t: OBJ, node, st: KEY, j: k }), { t: LIT, lit: p.key, pos: 1 }));
    if (p.required) return;
  }
}

function stepFree(st: number, s: Stack, b: number, out: Stack[]): void {
  const rest = s.next!;
  const key = () =>
    out.push(push(push(rest, FREE_FRAMES[KEY]!), { t: STR, node: ANY_STRING as StringNode, n: 0, m: S_NORMAL }));
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

function stepArray(f: Extract<Frame, { t: typeof ARR }>, s: Stack, b: number, out: Stack[]): void {
  const node = f.node;
  const rest = s.next!;
  if (f.st === OPEN) {
    if (b === RBRACK && node.min === 0) out.push(childDone(rest));
    else if (node.max > 0) startValue(node.items, push(rest, { t: ARR, node, st: VAL, n: 0 }), b, false, out);
  } else if (f.st === AFTER) {
    if (b === COMMA_B && f.n < node.max)
      out.push(push(push(rest, { t: ARR, node, st: VAL, n: f.n }), valueFrame(node.items, true)));
    else if (b === RBRACK && f.n >= node.min) out.push(childDone(rest));
  }
}
