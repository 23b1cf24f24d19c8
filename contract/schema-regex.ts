/**
 * Regular expressions (the JSON Schema `pattern` dialect: ECMAScript, unanchored unless ^/$) -> a DFA over
 * the characters a constrained string may contain. Pure TypeScript: the worker compiles patterns too, to
 * refuse what it cannot enforce before anything is billed.
 *
 * The output alphabet is printable ASCII without '"' and '\' (0x20..0x7e less two): those characters need
 * no JSON escaping, so a DFA step is a byte step. A class's other members (non-ASCII, control characters,
 * the quote and backslash) are dropped, which only narrows what can be generated. Supported: literals,
 * escapes (\d \w \s \D \W \S \n \t \xHH \uHHHH \. ...), classes with ranges and negation, `.`, groups
 * ((...), (?:...), (?<name>...)), alternation, quantifiers ? * + {n} {n,} {n,m} (lazy forms too), and ^ / $
 * at the ends of the pattern or of its top-level alternatives. Backreferences, lookaround, \b and inner
 * anchors are a SchemaError('pattern'). Every bound below is a SchemaError too: regex blow-up is refused.
 */

import { ALPHABET, type Dfa, MAX_DFA_STATES, prune, RegexError } from "./schema-dfa";

export type { Dfa };
export { RegexError };

/** NFA states one pattern may expand to (counted repeats are copies). */
export const MAX_NFA_STATES = 20_000;
/** The largest repeat count ({n,m}). */
export const MAX_REPEAT = 1_000;
const MAX_PATTERN_LENGTH = 4_096;

type CharSet = Uint8Array; // 128 flags
type Ast =
  | { t: "set"; s: CharSet }
  | { t: "seq"; items: Ast[] }
  | { t: "alt"; items: Ast[] }
  | { t: "rep"; a: Ast; min: number; max: number };

const set = (pred: (c: number) => boolean): CharSet => Uint8Array.from({ length: 128 }, (_, c) => (pred(c) ? 1 : 0));
const DIGIT = set((c) => c >= 0x30 && c <= 0x39);
const WORD = set((c) => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f);
const SPACE = set((c) => c === 0x20 || (c >= 0x09 && c <= 0x0d));
const DOT = set((c) => c !== 0x0a && c !== 0x0d);
const not = (s: CharSet): CharSet => s.map((x) => 1 - x);

class Parser {
  private i = 0;
  constructor(private readonly src: string) {}

  parse(): { ast: Ast; anchoredStart: boolean; anchoredEnd: boolean } {
    // Top-level alternatives may each carry ^ and $; a mix is handled per alternative.
    const alts: Ast[] = [];
    let anyStart = false;
    let anyEnd = false;
    for (;;) {
      const start = this.eat("^");
      const body = this.seq();
      const end = this.eat("$");
      if (!start) anyStart = true;
      if (!end) anyEnd = true;
      alts.push({ t: "seq", items: [start ? EMPTY : ANY_STAR, body, end ? EMPTY : ANY_STAR] });
      if (this.i >= this.src.length) break;
      if (!this.eat("|")) throw new RegexError(`unexpected '${this.src[this.i]}' at ${this.i}`);
    }
    return {
      ast: alts.length === 1 ? alts[0]! : { t: "alt", items: alts },
      anchoredStart: !anyStart,
      anchoredEnd: !anyEnd,
    };
  }

  private eat(c: string): boolean {
    if (this.src[this.i] !== c) return false;
    this.i++;
    return true;
  }

  private alt(): Ast {
    const items = [this.seq()];
    while (this.eat("|")) items.push(this.seq());
    return items.length === 1 ? items[0]! : { t: "alt", items };
  }

  private seq(): Ast {
    const items: Ast[] = [];
    for (;;) {
      const c = this.src[this.i];
      if (c === undefined || c === "|" || c === ")") break;
      if (c === "$" && this.atTopEnd()) break;
      if (c === "^" || c === "$") throw new RegexError("anchors are only supported at the ends of the pattern");
      items.push(this.quantified(this.atom()));
    }
    return items.length === 1 ? items[0]! : { t: "seq", items };
  }

  private depth = 0;
  /** A '$' that ends the pattern or a top-level alternative (depth 0). */
  private atTopEnd(): boolean {
    const n = this.src[this.i + 1];
    return this.depth === 0 && (n === undefined || n === "|");
  }

  private atom(): Ast {
    const c = this.src[this.i++]!;
    if (c === "(") {
      if (this.src.startsWith("?:", this.i)) this.i += 2;
      else if (this.src.startsWith("?<", this.i) && !/^\?<[=!]/.test(this.src.slice(this.i, this.i + 3))) {
        const close = this.src.indexOf(">", this.i);
        if (close < 0) throw new RegexError("unterminated group name");
        this.i = close + 1;
      } else if (this.src[this.i] === "?") throw new RegexError("lookaround and other (? groups are not supported");
      this.depth++;
      const inner = this.alt();
      this.depth--;
      if (!this.eat(")")) throw new RegexError("unbalanced parenthesis");
      return inner;
    }
    if (c === "[") return { t: "set", s: this.cls() };
    if (c === ".") return { t: "set", s: DOT };
    if (c === "\\") return { t: "set", s: this.escape(false) };
    if ("*+?{".includes(c) && !(c === "{" && !/^\d/.test(this.src[this.i] ?? "")))
      throw new RegexError(`nothing to repeat at ${this.i - 1}`);
    if (c === ")") throw new RegexError("unbalanced parenthesis");
    return { t: "set", s: single(c.codePointAt(0)!) };
  }

  private quantified(a: Ast): Ast {
    for (;;) {
      const c = this.src[this.i];
      let min: number;
      let max: number;
      if (c === "*") [min, max] = [0, Infinity];
      else if (c === "+") [min, max] = [1, Infinity];
      else if (c === "?") [min, max] = [0, 1];
      else if (c === "{") {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.i));
        if (!m) return a; // a literal '{' (ECMAScript's Annex B reading)
        min = Number(m[1]);
        max = m[2] === undefined ? min : m[3] === "" ? Infinity : Number(m[3]);
        if (min > max) throw new RegexError("a repeat's minimum exceeds its maximum");
        if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT))
          throw new RegexError(`repeat counts above ${MAX_REPEAT} are not supported`);
        this.i += m[0].length - 1;
      } else return a;
      this.i++;
      this.eat("?"); // lazy: same language
      a = { t: "rep", a, min, max };
    }
  }

  private cls(): CharSet {
    const negate = this.eat("^");
    const out = new Uint8Array(128);
    let first = true;
    for (;;) {
      const c = this.src[this.i];
      if (c === undefined) throw new RegexError("unterminated character class");
      if (c === "]" && !first) break;
      first = false;
      const lo = this.classAtom();
      if (this.src[this.i] === "-" && this.src[this.i + 1] !== "]" && this.src[this.i + 1] !== undefined) {
        this.i++;
        const hi = this.classAtom();
        if (typeof lo !== "number" || typeof hi !== "number")
          throw new RegexError("a class range needs single characters");
        if (lo > hi) throw new RegexError("a class range is out of order");
        for (let x = lo; x <= Math.min(hi, 127); x++) out[x] = 1;
      } else if (typeof lo === "number") {
        if (lo < 128) out[lo] = 1;
      } else for (let x = 0; x < 128; x++) out[x] ||= lo[x]!;
    }
    this.i++;
    return negate ? not(out) : out;
  }

  /** One class member: a code point or a set (\d and friends). */
  private classAtom(): number | CharSet {
    const c = this.src.codePointAt(this.i)!;
    this.i += c > 0xffff ? 2 : 1;
    if (c !== 0x5c) return c;
    const e = this.src[this.i];
    if (e === "b") {
      this.i++;
      return 0x08;
    }
    if (e === "-") {
      this.i++;
      return 0x2d;
    }
    const s = this.escape(true);
    const members = [...s.keys()].filter((x) => s[x]);
    return members.length === 1 && !"dDwWsS".includes(e ?? "") ? members[0]! : s;
  }

  private escape(inClass: boolean): CharSet {
    const e = this.src[this.i++];
    if (e === undefined) throw new RegexError("a trailing backslash");
    switch (e) {
      case "d":
        return DIGIT;
      case "D":
        return not(DIGIT);
      case "w":
        return WORD;
      case "W":
        return not(WORD);
      case "s":
        return SPACE;
      case "S":
        return not(SPACE);
      case "n":
        return single(0x0a);
      case "t":
        return single(0x09);
      case "r":
        return single(0x0d);
      case "f":
        return single(0x0c);
      case "v":
        return single(0x0b);
      case "0":
        if (/\d/.test(this.src[this.i] ?? "")) throw new RegexError("octal escapes are not supported");
        return single(0);
      case "x": {
        const h = /^[0-9a-fA-F]{2}/.exec(this.src.slice(this.i));
        if (!h) throw new RegexError("\\x needs two hex digits");
        this.i += 2;
        return single(Number.parseInt(h[0], 16));
      }
      case "u": {
        const h = /^(?:[0-9a-fA-F]{4}|\{[0-9a-fA-F]{1,6}\})/.exec(this.src.slice(this.i));
        if (!h) throw new RegexError("\\u needs four hex digits");
        this.i += h[0].length;
        return single(Number.parseInt(h[0].replace(/[{}]/g, ""), 16));
      }
      case "b":
      case "B":
        throw new RegexError("word boundaries (\\b, \\B) are not supported");
      case "k":
        throw new RegexError("backreferences are not supported");
      case "p":
      case "P":
        throw new RegexError("Unicode property escapes are not supported");
      case "c":
        throw new RegexError("control escapes are not supported");
      default:
        if (/[1-9]/.test(e)) throw new RegexError("backreferences are not supported");
        if (/[A-Za-z0-9]/.test(e) && !inClass) throw new RegexError(`unknown escape \\${e}`);
        return single(e.codePointAt(0)!);
    }
  }
}

const single = (c: number): CharSet => set((x) => x === c);
const EMPTY: Ast = { t: "seq", items: [] };
const ANY_STAR: Ast = { t: "rep", a: { t: "set", s: set(() => true) }, min: 0, max: Infinity };

/** Thompson NFA: per state, epsilon edges and (set, target) edges. */
class Nfa {
  eps: number[][] = [];
  edges: Array<Array<[CharSet, number]>> = [];
  add(): number {
    if (this.eps.length >= MAX_NFA_STATES)
      throw new RegexError(`the pattern expands to more than ${MAX_NFA_STATES} automaton states`);
    this.eps.push([]);
    this.edges.push([]);
    return this.eps.length - 1;
  }
  /** Builds `a` from `from`; returns its end state. */
  build(a: Ast, from: number): number {
    switch (a.t) {
      case "set": {
        const to = this.add();
        this.edges[from]!.push([a.s, to]);
        return to;
      }
      case "seq":
        return a.items.reduce((at, x) => this.build(x, at), from);
      case "alt": {
        const end = this.add();
        for (const x of a.items) this.eps[this.build(x, from)]!.push(end);
        return end;
      }
      case "rep": {
        let at = from;
        for (let k = 0; k < a.min; k++) at = this.build(a.a, at);
        if (a.max === Infinity) {
          const loop = this.add();
          this.eps[at]!.push(loop);
          this.eps[this.build(a.a, loop)]!.push(loop);
          return loop;
        }
        const end = this.add();
        this.eps[at]!.push(end);
        for (let k = a.min; k < a.max; k++) {
          at = this.build(a.a, at);
          this.eps[at]!.push(end);
        }
        return end;
      }
    }
  }
}

/** Compiles a pattern (search semantics, as ajv's RegExp.test) to a DFA. */
export function compilePattern(src: string): Dfa {
  if (src.length > MAX_PATTERN_LENGTH)
    throw new RegexError(`patterns longer than ${MAX_PATTERN_LENGTH} characters are not supported`);
  const { ast } = new Parser(src).parse();
  return astToDfa(ast);
}

function astToDfa(ast: Ast, splitDigits = false): Dfa {
  const nfa = new Nfa();
  const start = nfa.add();
  const end = nfa.build(ast, start);
  // Alphabet classes: characters no set tells apart share a class.
  const sets: CharSet[] = [];
  for (const es of nfa.edges) for (const [s] of es) sets.push(s);
  const classOf = new Uint8Array(256).fill(255);
  const sig = new Map<string, number>();
  const rep: number[] = [];
  for (const c of ALPHABET) {
    const key = (splitDigits && c >= 0x30 && c <= 0x39 ? `d${c}` : "") + sets.map((s) => s[c]).join("");
    let k = sig.get(key);
    if (k === undefined) {
      sig.set(key, (k = rep.length));
      rep.push(c);
    }
    classOf[c] = k;
  }
  const classes = rep.length;
  if (classes > 254) throw new RegexError("too many character classes");
  // Epsilon closures with a stamp array (no per-call sets): subset construction is the hot loop.
  const stamp = new Int32Array(nfa.eps.length);
  let round = 0;
  const closure = (xs: number[]): number[] => {
    round++;
    const out: number[] = [];
    const todo: number[] = [];
    for (const x of xs) if (stamp[x] !== round) (stamp[x] = round), todo.push(x);
    while (todo.length) {
      const x = todo.pop()!;
      out.push(x);
      for (const y of nfa.eps[x]!) if (stamp[y] !== round) (stamp[y] = round), todo.push(y);
    }
    return out.sort((a, b) => a - b);
  };
  const ids = new Map<string, number>();
  const subsets: number[][] = [];
  const trans: number[] = [];
  const accept: number[] = [];
  const intern = (xs: number[]): number => {
    const key = xs.join(",");
    let id = ids.get(key);
    if (id === undefined) {
      if (subsets.length >= MAX_DFA_STATES)
        throw new RegexError(`the pattern needs more than ${MAX_DFA_STATES} automaton states`);
      ids.set(key, (id = subsets.length));
      subsets.push(xs);
    }
    return id;
  };
  intern(closure([start]));
  for (let q = 0; q < subsets.length; q++) {
    const xs = subsets[q]!;
    accept.push(xs.includes(end) ? 1 : 0);
    for (let k = 0; k < classes; k++) {
      const c = rep[k]!;
      const to: number[] = [];
      for (const x of xs) {
        const es = nfa.edges[x]!;
        for (let i = 0; i < es.length; i++) if (es[i]![0][c]) to.push(es[i]![1]);
      }
      trans.push(to.length === 0 ? -1 : intern(closure(to)));
    }
  }
  return prune({
    classOf,
    classes,
    trans: Int32Array.from(trans),
    accept: Uint8Array.from(accept),
    rep: Uint8Array.from(rep),
    size: subsets.length,
  });
}

/** A DFA for an anchored regex source (used for formats and numbers), digits kept apart when asked. */
export function compileAnchored(src: string, splitDigits = false): Dfa {
  const ast = new Parser(src).parse().ast;
  return astToDfa(ast, splitDigits);
}
