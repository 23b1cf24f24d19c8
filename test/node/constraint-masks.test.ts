/**
 * Token masks over the structured-output automaton, without a model: masks equal to a brute-force check of
 * every token (inside strings, escapes, numbers, patterns and formats), tokens that split escapes and UTF-8
 * characters, and random walks over the masks (a stand-in for a random-weight model) that must always end in
 * valid, schema-valid JSON.
 */
import { describe, expect, it } from "vitest";
import { accepting, advance, initialState } from "../../gpu-backend/engine/constraint/automaton";
import { compileResponseFormat, mistralVocab } from "../../gpu-backend/engine/constraint/index";
import { compileSchema, JSON_OBJECT_GRAMMAR, type Grammar } from "../../contract/json-schema";
import { computeMask, Constraint } from "../../gpu-backend/engine/constraint/token-mask";
import { createRng } from "../../gpu-backend/engine/sampler";
import { TEST_SCHEMAS, validate } from "./helpers/json-schema-check";
import { randomWalk, TINY_MANIFEST, tokenIdOf } from "./helpers/constraint-fixtures";

const enc = new TextEncoder();
const accepts = (g: Grammar, text: string) => advance(initialState(g), enc.encode(text))?.some(accepting) ?? false;
const manifest = TINY_MANIFEST;

/** Formats and a pattern, for masks inside DFA values. */
const PATTERNED = compileSchema({
  type: "object",
  properties: {
    e: { type: "string", format: "email" },
    u: { type: "string", format: "uuid" },
    p: { type: "string", pattern: "^[A-Z]{2}-[0-9]{3,5}$" },
    d: { type: "string", format: "date-time" },
  },
  required: ["e", "u", "p", "d"],
  additionalProperties: false,
});

describe("token masks", () => {
  const vocab = mistralVocab(2);
  const bytesOf = (id: number) => vocab.bytes(id) ?? new Uint8Array(0);
  const idOf = (piece: string) => tokenIdOf(vocab, piece);
  const maskHas = (g: Grammar, prefix: string, id: number) => {
    const m = computeMask(vocab, advance(initialState(g), enc.encode(prefix))!);
    return (m.bits[id >>> 5]! & (1 << (id & 31))) !== 0;
  };

  it("equals a brute-force check of every token (states inside strings, escapes, numbers, keys, literals)", () => {
    const cases: Array<[Grammar, string]> = [
      [JSON_OBJECT_GRAMMAR, ""],
      [JSON_OBJECT_GRAMMAR, '{"a": "x'],
      [JSON_OBJECT_GRAMMAR, '{"a":"\\'],
      [JSON_OBJECT_GRAMMAR, '{"a":"\\ud83d'],
      [JSON_OBJECT_GRAMMAR, '{"a":[1'],
      [JSON_OBJECT_GRAMMAR, '{"a":1.5e'],
      [JSON_OBJECT_GRAMMAR, '{"a":{"b":[]},'],
      [compileSchema(TEST_SCHEMAS.flat), '{"name":"0123456'],
      [compileSchema(TEST_SCHEMAS.flat), '{"name":"x","age":7'],
      [compileSchema(TEST_SCHEMAS.nested), '{"id":"x","tags":["re'],
      [compileSchema(TEST_SCHEMAS.anyOf), '{"result":'],
      // Inside quoted patterns and formats plain tokens come from per-DFA-state bitsets (token-mask.ts).
      ...[
        '{"e":"',
        '{"e":"ab',
        '{"e":"a@b',
        '{"e":"a@b.co","u":"0123',
        '{"e":"a@b.co","u":"01234567-89ab-4def-8123-456789abcde',
        '{"e":"a@b.co","u":"01234567-89ab-4def-8123-456789abcdef","p":"AB-12',
        '{"e":"a@b.co","u":"01234567-89ab-4def-8123-456789abcdef","p":"AB-123","d":"2024-01-0',
      ].map((prefix): [Grammar, string] => [PATTERNED, prefix]),
    ];
    for (const [g, prefix] of cases) {
      const state = advance(initialState(g), enc.encode(prefix))!;
      const m = computeMask(vocab, state);
      let allowed = 0;
      for (let id = 0; id < vocab.size; id++) {
        const b = bytesOf(id);
        const ok = b.length > 0 && advance(state, b) !== null;
        const bit = (m.bits[id >>> 5]! & (1 << (id & 31))) !== 0;
        if (id !== vocab.eos && ok !== bit)
          throw new Error(
            `${prefix}: token ${id} ${JSON.stringify(new TextDecoder().decode(b))} brute ${ok} mask ${bit}`,
          );
        if (ok) allowed++;
      }
      expect(m.allowed, prefix).toBe(allowed + (state.some(accepting) ? 1 : 0));
    }
  });

  it("tokens may split an escape or a number, and byte-fallback tokens may split a UTF-8 character", () => {
    expect(maskHas(JSON_OBJECT_GRAMMAR, '{"a":"\\', idOf("u"))).toBe(true);
    expect(maskHas(JSON_OBJECT_GRAMMAR, '{"a":"\\', idOf("n"))).toBe(true);
    expect(maskHas(JSON_OBJECT_GRAMMAR, '{"a":"\\', idOf("x"))).toBe(false);
    expect(maskHas(JSON_OBJECT_GRAMMAR, '{"a":"\\u', idOf("0"))).toBe(true);
    expect(maskHas(JSON_OBJECT_GRAMMAR, '{"a":"\\u', idOf("ab"))).toBe(true);
    expect(maskHas(JSON_OBJECT_GRAMMAR, '{"a":12', idOf("3"))).toBe(true);
    expect(maskHas(JSON_OBJECT_GRAMMAR, '{"a":12', idOf("}"))).toBe(true);
    expect(maskHas(JSON_OBJECT_GRAMMAR, '{"a":12', idOf("a"))).toBe(false);
    expect(maskHas(JSON_OBJECT_GRAMMAR, '{"a":0', idOf("1"))).toBe(false);
    expect(maskHas(JSON_OBJECT_GRAMMAR, '{"a":"', 3 + 0xe6)).toBe(true); // <0xE6>: a lead byte
    const c = new Constraint(compileResponseFormat({ type: "json_object" }, manifest));
    for (const id of [idOf("{"), idOf('"'), idOf("a"), idOf('":'), idOf('"'), 3 + 0xe6, 3 + 0xbc, 3 + 0xa2]) {
      const row = new Float32Array(vocab.size);
      expect(c.apply(row)).toBe(true);
      expect(row[id]).toBe(0);
      c.accept(id);
    }
    const row = new Float32Array(vocab.size);
    c.apply(row);
    expect(row[2]).toBe(-Infinity); // EOS only once the document is complete
    c.accept(idOf('"'));
    expect(c.complete).toBe(false);
    c.accept(idOf("}"));
    expect(c.complete).toBe(true);
  });

  it("random walks over the masks (uniform random logits, temperature 1) always give valid, schema-valid JSON", () => {
    const rng = createRng(7);
    const formats = [
      { name: "json_object", rf: { type: "json_object" as const }, schema: { type: "object" } },
      ...Object.entries(TEST_SCHEMAS).map(([name, schema]) => ({
        name,
        rf: { type: "json_schema" as const, schema },
        schema,
      })),
    ];
    for (const f of formats) {
      let complete = 0;
      for (let d = 0; d < 30; d++) {
        const c = new Constraint(compileResponseFormat(f.rf, manifest));
        const out = randomWalk(c, vocab, rng, 300);
        const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(Buffer.concat(out));
        expect(accepts(advanceGrammar(f.rf), text) || !c.complete).toBe(true);
        if (!c.complete && !isDone(f.rf, text)) continue;
        complete++;
        const value: unknown = JSON.parse(text);
        expect(validate(value, f.schema as Record<string, unknown>), text).toBeNull();
      }
      expect(complete, f.name).toBeGreaterThan(10);
    }
  });
});

function advanceGrammar(rf: { type: "json_object" } | { type: "json_schema"; schema: unknown }): Grammar {
  return rf.type === "json_object" ? JSON_OBJECT_GRAMMAR : compileSchema(rf.schema);
}
/** The document is complete (EOS would have been allowed) even if the walk was stopped by EOS itself. */
function isDone(rf: { type: "json_object" } | { type: "json_schema"; schema: unknown }, text: string): boolean {
  return accepts(advanceGrammar(rf), text);
}
