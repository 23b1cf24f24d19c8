/**
 * The vocabulary prepared for token-mask walks (token-mask.ts): every token's bytes in a byte trie, the trie
 * split into "plain" tokens (string-safe bytes, whole UTF-8 characters) and the rest, and plain tokens by
 * their length in code points.
 */
import type { Encoder } from "./jump-forward";

/** Bytes of each token id (null: a control token that never appears in constrained output) and the EOS id. */
export interface TokenVocab {
  bytes: ReadonlyArray<Uint8Array | null>;
  eos: number;
}

/** The vocabulary as a byte trie in CSR form: edges of node k are edgeStart[k] .. edgeStart[k + 1]. */
export class TokenTrie {
  readonly size: number;
  readonly eos: number;
  readonly edgeStart: Int32Array;
  readonly edgeByte: Uint8Array;
  readonly edgeNode: Int32Array;
  /** Tokens whose bytes end at node k: tokIds[tokStart[k] .. tokStart[k + 1]]. */
  readonly tokStart: Int32Array;
  readonly tokIds: Int32Array;
  readonly bytes: ReadonlyArray<Uint8Array | null>;

  constructor(vocab: TokenVocab) {
    this.size = vocab.bytes.length;
    this.eos = vocab.eos;
    this.bytes = vocab.bytes;
    const kids: Map<number, number>[] = [new Map()];
    const toks: number[][] = [[]];
    vocab.bytes.forEach((bs, id) => {
      if (!bs || bs.length === 0) return;
      let n = 0;
      for (const b of bs) {
        let c = kids[n]!.get(b);
        if (c === undefined) {
          c = kids.length;
          kids.push(new Map());
          toks.push([]);
          kids[n]!.set(b, c);
        }
        n = c;
      }
      toks[n]!.push(id);
    });
    const nodes = kids.length;
    this.edgeStart = new Int32Array(nodes + 1);
    this.edgeByte = new Uint8Array(nodes - 1);
    this.edgeNode = new Int32Array(nodes - 1);
    this.tokStart = new Int32Array(nodes + 1);
    const ids: number[] = [];
    let e = 0;
    for (let k = 0; k < nodes; k++) {
      this.edgeStart[k] = e;
      for (const [b, c] of [...kids[k]!].sort((x, y) => x[0] - y[0])) {
        this.edgeByte[e] = b;
        this.edgeNode[e++] = c;
      }
      this.tokStart[k] = ids.length;
      ids.push(...toks[k]!);
    }
    this.edgeStart[nodes] = e;
    this.tokStart[nodes] = ids.length;
    this.tokIds = Int32Array.from(ids);
  }
}

/** The vocabulary prepared for mask walks: the full trie, the tries of plain and non-plain tokens, plain ones by length. */
export class VocabIndex {
  readonly full: TokenTrie;
  readonly special: TokenTrie;
  readonly plain: TokenTrie;
  /** plainUpTo[k]: plain tokens of 1..k code points (k <= maxPlain). */
  readonly plainUpTo: Int32Array[];
  readonly maxPlain: number;

  constructor(
    vocab: TokenVocab,
    /** The tokenizer's encoder (jump-forward encodes forced text with it); without one nothing is jumped. */
    readonly encode: Encoder | null = null,
  ) {
    this.full = new TokenTrie(vocab);
    const cps = vocab.bytes.map((b) => (b && b.length > 0 ? plainCodePoints(b) : -1));
    this.special = new TokenTrie({ bytes: vocab.bytes.map((b, id) => (cps[id]! > 0 ? null : b)), eos: vocab.eos });
    this.plain = new TokenTrie({ bytes: vocab.bytes.map((b, id) => (cps[id]! > 0 ? b : null)), eos: vocab.eos });
    this.maxPlain = Math.max(0, ...cps);
    const words = Math.ceil(vocab.bytes.length / 32);
    this.plainUpTo = [new Int32Array(words)];
    for (let k = 1; k <= this.maxPlain; k++) {
      const bits = Int32Array.from(this.plainUpTo[k - 1]!);
      cps.forEach((c, id) => {
        if (c === k) bits[id >>> 5]! |= 1 << (id & 31);
      });
      this.plainUpTo.push(bits);
    }
  }

  get size(): number {
    return this.full.size;
  }
  get eos(): number {
    return this.full.eos;
  }
  bytes(id: number): Uint8Array | null {
    return this.full.bytes[id] ?? null;
  }
}

/** Code points of a token made only of string-safe bytes and whole UTF-8 characters; -1 otherwise. */
function plainCodePoints(b: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < b.length; ) {
    const x = b[i]!;
    if (x === 0x22 || x === 0x5c || x < 0x20) return -1;
    const len = x < 0x80 ? 1 : x >= 0xc2 && x <= 0xdf ? 2 : x >= 0xe0 && x <= 0xef ? 3 : x >= 0xf0 && x <= 0xf4 ? 4 : 0;
    if (len === 0 || i + len > b.length) return -1;
    // Whole characters only; TextDecoder checks the fine ranges (overlongs, surrogates).
    if (len > 1 && !wellFormed(b.subarray(i, i + len))) return -1;
    i += len;
    n++;
  }
  return n;
}

const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
function wellFormed(b: Uint8Array): boolean {
  try {
    strict.decode(b);
    return true;
  } catch {
    return false;
  }
}
