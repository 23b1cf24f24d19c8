/**
 * String and number frames of the automaton, byte by byte: JSON's string grammar with UTF-8 checked and
 * \u surrogates only in high-low pairs (code points counted for min/maxLength), and JSON numbers with
 * bounded digit runs (always finite; integers stay exact).
 */
import {
  BS,
  childDone,
  DOT,
  H2,
  H3,
  isDigit,
  L0,
  L1,
  L2,
  L3,
  MINUS,
  N_DOT,
  N_E,
  N_ESIGN,
  N_EXP,
  N_FRAC,
  N_INT,
  N_MINUS,
  N_ZERO,
  NEED_BS,
  NEED_U,
  NUM,
  push,
  QUOTE,
  S_ESC,
  S_NORMAL,
  STR,
  U0,
  U1,
  U1D,
  U2,
  U3,
  UTF8,
  ZERO,
  type Frame,
  type Stack,
} from "./frames";

const MAX_INT_DIGITS = 15,
  MAX_FRAC_DIGITS = 15,
  MAX_EXP_DIGITS = 2;
const isHex = (b: number) => isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);
/** After one more hex digit of a \\u escape. */
const HEX_NEXT: Record<number, number> = {
  [U1]: U2,
  [U2]: U3,
  [U3]: S_NORMAL,
  [H2]: H3,
  [H3]: NEED_BS,
  [L2]: L3,
  [L3]: S_NORMAL,
};
const ESCAPES = new Set([0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74]);

export function stepString(f: Extract<Frame, { t: typeof STR }>, s: Stack, b: number, out: Stack[]): void {
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

export const numberEnds = (st: number) => st === N_ZERO || st === N_INT || st === N_FRAC || st === N_EXP;

/** Steps a number; true when it ended before b (the caller hands b to the parent). */
export function stepNumber(f: Extract<Frame, { t: typeof NUM }>, s: Stack, b: number, out: Stack[]): boolean {
  const node = f.node;
  const to = (st: number, c: number): false => (out.push(push(s.next, { t: NUM, node, st, c })), false);
  const int = node.integer;
  switch (f.st) {
    case N_MINUS:
      if (b === ZERO) return to(N_ZERO, 1);
      if (isDigit(b)) return to(N_INT, 1);
      return false;
    // biome-ignore lint/suspicious/noFallthroughSwitchClause: the integer part may end here
    case N_INT:
      if (isDigit(b) && f.c < MAX_INT_DIGITS) return to(N_INT, f.c + 1);
    case N_ZERO:
      if (!int && b === DOT) return to(N_DOT, 0);
      if (!int && (b === 0x65 || b === 0x45)) return to(N_E, 0);
      break;
    case N_DOT:
      return isDigit(b) ? to(N_FRAC, 1) : false;
    case N_FRAC:
      if (isDigit(b) && f.c < MAX_FRAC_DIGITS) return to(N_FRAC, f.c + 1);
      if (b === 0x65 || b === 0x45) return to(N_E, 0);
      break;
    case N_E:
      if (b === 0x2b || b === MINUS) return to(N_ESIGN, 0);
      if (isDigit(b)) return to(N_EXP, 1);
      return false;
    case N_ESIGN:
      return isDigit(b) ? to(N_EXP, 1) : false;
    case N_EXP:
      if (isDigit(b) && f.c < MAX_EXP_DIGITS) return to(N_EXP, f.c + 1);
      break;
  }
  return true;
}
