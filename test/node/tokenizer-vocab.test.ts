/**
 * The facts the fast tokenizer relies on, checked against the reference files (../shared, read in place;
 * skipped when absent) and against mistral-tokenizer-js (npm, always present):
 *  - the bundled vocabulary (vocab.generated.ts) is Mistral v1's, piece for piece;
 *  - scores are derivable from ids: -(id - 259), or -1e9 for pieces made only of "▁";
 *  - normalizer: identity, dummy prefix, whitespace kept; BPE with byte fallback; no user-defined pieces;
 *  - no piece contains "\n" or " ", and "▁" never follows another character inside a piece
 *    (so splitting lines and cutting before space runs is exact);
 *  - every character of a piece is a piece (so unknown characters never take part in a merge);
 *  - the pairs that merge are exactly tokenizer.json's merges.
 */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import mistral from "mistral-tokenizer-js";
import { describe, expect, it } from "vitest";
import { encode } from "../../worker/tokenizer/index";
import { FIRST_NORMAL_ID, VOCAB_SIZE } from "../../worker/tokenizer/vocab-layout";
import { SPACE_RUN_RANK, getVocab, mergePair } from "../../worker/tokenizer/vocab";

const dir = resolve(import.meta.dirname, "../../../shared/data/tokenizer");
const haveModel = existsSync(resolve(dir, "tokenizer.model"));
const haveJson = existsSync(resolve(dir, "tokenizer.json"));
if (!haveModel || !haveJson) console.warn(`tokenizer-vocab: reference checks SKIPPED, files not found in ${dir}`);

// --- minimal protobuf reader for sentencepiece_model.proto ---
type Field = { num: number; wire: number; int: bigint; bytes: Uint8Array };
function* fields(buf: Uint8Array): Generator<Field> {
  let i = 0;
  const varint = (): bigint => {
    let r = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[i++];
      r |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if (b < 0x80) return r;
    }
  };
  while (i < buf.length) {
    const key = Number(varint());
    const wire = key & 7;
    const f: Field = { num: key >> 3, wire, int: 0n, bytes: new Uint8Array(0) };
    if (wire === 0) f.int = varint();
    else if (wire === 2) {
      const len = Number(varint());
      f.bytes = buf.subarray(i, i + len);
      i += len;
    } else if (wire === 5) {
      f.bytes = buf.subarray(i, i + 4);
      i += 4;
    } else if (wire === 1) {
      f.bytes = buf.subarray(i, i + 8);
      i += 8;
    } else throw new Error(`wire type ${wire}`);
    yield f;
  }
}
interface ModelPiece {
  piece: string;
  score: number;
  type: number; // 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
}
function readModel() {
  const buf = new Uint8Array(readFileSync(resolve(dir, "tokenizer.model")));
  const pieces: ModelPiece[] = [];
  const trainer = new Map<number, bigint>();
  const normalizer = new Map<number, bigint | string>();
  const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }); // one piece is U+FEFF
  for (const f of fields(buf)) {
    if (f.num === 1) {
      const p: ModelPiece = { piece: "", score: 0, type: 1 };
      for (const g of fields(f.bytes)) {
        if (g.num === 1) p.piece = utf8.decode(g.bytes);
        else if (g.num === 2) p.score = new DataView(g.bytes.buffer, g.bytes.byteOffset, 4).getFloat32(0, true);
        else if (g.num === 3) p.type = Number(g.int);
      }
      pieces.push(p);
    } else if (f.num === 2) {
      for (const g of fields(f.bytes)) if (g.wire === 0) trainer.set(g.num, g.int);
    } else if (f.num === 3) {
      for (const g of fields(f.bytes)) normalizer.set(g.num, g.wire === 0 ? g.int : utf8.decode(g.bytes));
    }
  }
  return { pieces, trainer, normalizer };
}

describe.skipIf(!haveModel)("tokenizer.model facts", () => {
  const model = haveModel ? readModel() : { pieces: [], trainer: new Map(), normalizer: new Map() };
  const v = getVocab();

  it("bundled pieces are the model's pieces, with the fixed id layout", () => {
    expect(model.pieces.length).toBe(VOCAB_SIZE);
    expect(v.pieces).toEqual(model.pieces.map((p) => p.piece));
    const types = model.pieces.map((p) => p.type);
    expect(types.slice(0, 3)).toEqual([2, 3, 3]);
    expect(types.slice(3, FIRST_NORMAL_ID).every((t) => t === 6)).toBe(true);
    // Only normal pieces after that: no user-defined (prefix matcher) or unused (resegmentation) pieces.
    expect(types.slice(FIRST_NORMAL_ID).every((t) => t === 1)).toBe(true);
  });

  it("scores are -(id - 259), except -1e9 for all-space pieces; ranks order pieces the same way", () => {
    const isSpaceRun = (p: string) => /^\u2581+$/.test(p);
    const bad: string[] = [];
    for (let id = FIRST_NORMAL_ID; id < VOCAB_SIZE; id++) {
      const { piece, score } = model.pieces[id];
      if (score !== (isSpaceRun(piece) ? -1e9 : -(id - 259))) bad.push(`score ${id}`);
      if (v.rank[id] !== (isSpaceRun(piece) ? SPACE_RUN_RANK : id)) bad.push(`rank ${id}`);
    }
    expect(bad).toEqual([]);
    // Runs of 1..14 and 16 spaces (there is no 15).
    expect(
      model.pieces
        .filter((p) => isSpaceRun(p.piece))
        .map((p) => p.piece.length)
        .sort((a, b) => a - b),
    ).toEqual([...Array.from({ length: 14 }, (_, i) => i + 1), 16]);
  });

  it("normalizer and trainer settings are the ones the encoder implements", () => {
    expect(model.normalizer.get(1)).toBe("identity"); // no NFKC
    expect(model.normalizer.get(3)).toBe(1n); // add_dummy_prefix
    expect(model.normalizer.get(4)).toBe(0n); // remove_extra_whitespaces = false
    expect(model.normalizer.get(5) ?? 1n).toBe(1n); // escape_whitespaces (default true)
    expect(model.trainer.get(3)).toBe(2n); // model_type BPE
    expect(model.trainer.get(35)).toBe(1n); // byte_fallback
    expect([model.trainer.get(40), model.trainer.get(41), model.trainer.get(42)]).toEqual([0n, 1n, 2n]); // unk, bos, eos
    // treat_whitespace_as_suffix (24) must be off: the "▁" starts pieces.
    expect(model.trainer.get(24) ?? 0n).toBe(0n);
  });
});

describe("vocabulary invariants behind the fast path", () => {
  const v = getVocab();
  const normal = v.pieces.slice(FIRST_NORMAL_ID);

  it("no piece contains a newline or a plain space; '▁' only in a leading run", () => {
    expect(normal.filter((p) => p.includes("\n") || p.includes(" "))).toEqual([]);
    expect(normal.filter((p) => /[^\u2581]\u2581/.test(p))).toEqual([]);
  });

  it("every character of a piece is a one-character piece", () => {
    const missing = new Set<string>();
    for (const p of normal) for (const ch of p) if (!v.pieceToId.has(ch)) missing.add(ch);
    expect([...missing]).toEqual([]);
  });

  it("the bundled vocabulary is mistral-tokenizer-js's (generated module up to date)", () => {
    expect(v.pieces).toEqual(mistral.vocabById);
  });

  it("agrees with mistral-tokenizer-js on random tricky strings", () => {
    const alphabet = [
      ..."aeinrst",
      " ",
      " ",
      "  ",
      "\n",
      "▁",
      "é",
      "ß",
      "中",
      "文",
      "🦙",
      "👍🏽",
      "\t",
      "<s>",
      "[INST]",
      "ing",
      "the",
      "##",
      "0",
      "12",
    ];
    let seed = 1234;
    const rand = (n: number) => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n;
    for (let t = 0; t < 400; t++) {
      let s = "";
      const len = 1 + rand(60);
      for (let i = 0; i < len; i++) s += alphabet[rand(alphabet.length)];
      expect(encode(s), JSON.stringify(s)).toEqual(mistral.encode(s, false, true));
    }
  });
});

describe.skipIf(!haveJson)("tokenizer.json", () => {
  const json = haveJson
    ? (JSON.parse(readFileSync(resolve(dir, "tokenizer.json"), "utf8")) as {
        model: { vocab: Record<string, number>; merges: string[] };
      })
    : { model: { vocab: {}, merges: [] } };
  const v = getVocab();

  it("vocab matches", () => {
    expect(Object.keys(json.model.vocab).length).toBe(VOCAB_SIZE);
    const bad = Object.entries(json.model.vocab).filter(([piece, id]) => v.pieces[id] !== piece);
    expect(bad).toEqual([]);
  });

  it("pairs that merge (any split of a piece into two pieces) are exactly tokenizer.json's merges", () => {
    const splits = new Set<string>();
    for (const p of v.pieces.slice(FIRST_NORMAL_ID)) {
      const cps = [...p];
      for (let k = 1; k < cps.length; k++) {
        const a = cps.slice(0, k).join("");
        const b = cps.slice(k).join("");
        if (v.pieceToId.has(a) && v.pieceToId.has(b)) splits.add(`${a} ${b}`);
      }
    }
    expect(splits.size).toBe(json.model.merges.length);
    expect(json.model.merges.filter((m) => !splits.has(m))).toEqual([]);
    const bad = json.model.merges.filter((m) => {
      const [a, b] = m.split(" ");
      return mergePair(v, v.pieceToId.get(a)!, v.pieceToId.get(b)!) !== v.pieceToId.get(a + b);
    });
    expect(bad).toEqual([]);
    expect(mergePair(v, v.pieceToId.get("q")!, v.pieceToId.get("▁")!)).toBe(-1);
  });
});
