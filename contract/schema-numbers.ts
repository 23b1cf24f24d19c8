/**
 * Numeric keywords (minimum, maximum, exclusiveMinimum, exclusiveMaximum, multipleOf) -> a DFA over the
 * number's JSON text (schema-regex.ts). Generation is a subset of what the bounds accept:
 *  - integers: every integer in range, at most 15 digits (exact in a double);
 *  - numbers with bounds: the integers in range, plus decimals "i.f" whose whole interval [i, i+1) lies
 *    in range (for an exclusive integer bound, i itself with a nonzero fraction), no exponent, and at
 *    most 15 significant digits so the decimal parses to a double on the right side of every bound;
 *  - multipleOf: a positive integer only (ajv divides floats, so 0.07 is not a multiple of 0.01 there);
 *    the value is then an integer whose remainder is tracked digit by digit.
 */
import { type Dfa, productDfa, RegexError } from "./schema-dfa";
import { compileAnchored } from "./schema-regex";

/** 10^15 - 1: the largest magnitude generated. */
const LIMIT = 999_999_999_999_999;
/** Fraction digits of bounded decimals; their integer part then has at most 15 - 6 digits. */
const MAX_FRACTION = 6;
export const MAX_MULTIPLE_OF = 10_000;

export interface NumericBounds {
  integer: boolean;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  multipleOf?: number;
}

/** The DFA for the bounds, or null when none is set (the plain number automaton then applies). */
export function numberDfa(b: NumericBounds): Dfa | null {
  const { minimum, maximum, exclusiveMinimum: xmin, exclusiveMaximum: xmax, multipleOf } = b;
  if ([minimum, maximum, xmin, xmax, multipleOf].every((v) => v === undefined)) return null;
  for (const v of [minimum, maximum, xmin, xmax, multipleOf])
    if (v !== undefined && !Number.isFinite(v)) throw new RegexError("numeric bounds must be finite numbers");
  if (multipleOf !== undefined && (!Number.isInteger(multipleOf) || multipleOf <= 0 || multipleOf > MAX_MULTIPLE_OF))
    throw new RegexError(`multipleOf must be a positive integer up to ${MAX_MULTIPLE_OF}`);
  // The tightest lower and upper bound, and whether each is exclusive.
  let lo = -Infinity;
  let loX = false;
  if (minimum !== undefined) lo = minimum;
  if (xmin !== undefined && xmin >= lo) [lo, loX] = [xmin, true];
  let hi = Infinity;
  let hiX = false;
  if (maximum !== undefined) hi = maximum;
  if (xmax !== undefined && xmax <= hi) [hi, hiX] = [xmax, true];
  const integer = b.integer || multipleOf !== undefined;
  const iLo = Math.max(-LIMIT, loX && Number.isInteger(lo) ? lo + 1 : Math.ceil(lo));
  const iHi = Math.min(LIMIT, hiX && Number.isInteger(hi) ? hi - 1 : Math.floor(hi));
  const alts: string[] = [];
  if (iLo <= iHi) alts.push(intRange(iLo, iHi));
  if (!integer) alts.push(...decimals(lo, loX, hi, hiX));
  if (alts.length === 0) throw new RegexError("no number this service generates lies within the bounds");
  const src = `^(?:${alts.join("|")})$`;
  if (multipleOf === undefined) return compileAnchored(src);
  const dfa = compileAnchored(src, true);
  // Remainder of the digits so far (the sign does not change divisibility).
  const k = multipleOf;
  return productDfa(
    dfa,
    k,
    (r, c) => (c >= 0x30 && c <= 0x39 ? (r * 10 + c - 0x30) % k : r),
    (r) => r === 0,
  );
}

/** Decimal alternatives "i.f" and "-i.f" (see the module comment). */
function decimals(lo: number, loX: boolean, hi: number, hiX: boolean): string[] {
  const out: string[] = [];
  const fd = MAX_FRACTION;
  const frac = `\\.\\d{1,${fd}}`;
  const nonzero = `\\.\\d{0,${fd - 1}}[1-9]`;
  const cap = 10 ** (15 - fd) - 1; // integer parts that keep 15 significant digits
  // Positive "i.f" lies in [i, i+1): i >= lo (i > lo when exclusive), i + 1 <= hi.
  const pLo = Math.max(0, loX && Number.isInteger(lo) ? lo + 1 : Math.ceil(lo));
  const pHi = Math.min(cap, Math.floor(hi) - 1);
  if (pLo <= pHi) out.push(`${intRange(pLo, pHi)}${frac}`);
  if (loX && Number.isInteger(lo) && lo >= 0 && lo <= cap && lo + 1 <= hi) out.push(`${lo}${nonzero}`);
  // Negative "-i.f" lies in (-(i+1), -i]: -(i+1) >= lo, -i <= hi (-i < hi when exclusive).
  const nLo = Math.max(0, hiX && Number.isInteger(hi) ? -hi + 1 : Math.ceil(-hi));
  const nHi = Math.min(cap, Math.floor(-lo) - 1);
  if (nLo <= nHi) out.push(`-${intRange(nLo, nHi)}${frac}`);
  if (hiX && Number.isInteger(hi) && hi <= 0 && -hi <= cap && -hi - 1 >= lo) out.push(`-${-hi}${nonzero}`);
  return out;
}

/** A regex for the integers a..b in JSON syntax (no leading zeros, no "-0"). */
export function intRange(a: number, b: number): string {
  const parts: string[] = [];
  if (a < 0) parts.push(`-(?:${posRange(Math.max(1, -Math.min(b, -1)), -a)})`);
  if (b >= 0) parts.push(posRange(Math.max(a, 0), b));
  return parts.length === 1 ? parts[0]! : `(?:${parts.join("|")})`;
}

/** a..b, both >= 0, split by digit count. */
function posRange(a: number, b: number): string {
  const alts: string[] = [];
  let lo = a;
  while (lo <= b) {
    const len = String(lo).length;
    const top = Math.min(b, 10 ** len - 1);
    alts.push(sameLength(String(lo), String(top)));
    lo = top + 1;
  }
  return alts.length === 1 ? alts[0]! : `(?:${alts.join("|")})`;
}

/** lo..hi as decimal strings of one length. */
function sameLength(lo: string, hi: string): string {
  if (lo === hi) return lo;
  if (lo.length === 1) return `[${lo}-${hi}]`;
  const n = lo.length - 1;
  const d1 = Number(lo[0]);
  const d2 = Number(hi[0]);
  if (d1 === d2) return `${d1}${sameLength(lo.slice(1), hi.slice(1))}`;
  const alts: string[] = [];
  const loRest = lo.slice(1);
  const hiRest = hi.slice(1);
  const loFull = /^0*$/.test(loRest);
  const hiFull = /^9*$/.test(hiRest);
  const midLo = loFull ? d1 : d1 + 1;
  const midHi = hiFull ? d2 : d2 - 1;
  if (!loFull) alts.push(`${d1}${sameLength(loRest, "9".repeat(n))}`);
  if (midLo <= midHi) alts.push(`${midLo === midHi ? midLo : `[${midLo}-${midHi}]`}\\d{${n}}`);
  if (!hiFull) alts.push(`${d2}${sameLength("0".repeat(n), hiRest)}`);
  return alts.length === 1 ? alts[0]! : `(?:${alts.join("|")})`;
}
