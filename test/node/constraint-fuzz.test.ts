/**
 * Seeded fuzz of the schema subset: random schemas (numeric bounds, patterns, formats, unions, allOf,
 * tuples, recursion) -> random documents from the automaton -> ajv 2020-12 with ajv-formats must accept
 * every finished one. Byte-level walks cover the automaton; token-level walks at temperature 1 over the
 * real vocabulary's masks cover what a model can actually emit.
 */
import { describe, expect, it } from "vitest";
import { compileSchema } from "../../contract/json-schema";
import { FORMATS } from "../../contract/schema-formats";
import { compileResponseFormat, mistralVocab } from "../../gpu-backend/engine/constraint/index";
import { Constraint } from "../../gpu-backend/engine/constraint/token-mask";
import { createRng } from "../../gpu-backend/engine/sampler";
import { FORMAT_NAMES, makeAjv, PATTERNS, randomDocument, randomSchema, rngFrom } from "./helpers/schema-fuzz";
import { randomWalk, TINY_MANIFEST } from "./helpers/constraint-fixtures";

const ajv = makeAjv();
const manifest = TINY_MANIFEST;

describe("schema subset fuzz (ajv + ajv-formats judge)", () => {
  it("byte-level walks: 150 random schemas x 8 documents, every finished document validates", () => {
    const r = rngFrom(20261207);
    let finished = 0;
    for (let i = 0; i < 150; i++) {
      const schema = randomSchema(r);
      const g = compileSchema(schema);
      const check = ajv.compile(schema);
      for (let d = 0; d < 8; d++) {
        const text = randomDocument(g, r);
        if (text === null) continue;
        finished++;
        const ok = check(JSON.parse(text));
        expect(ok, `${JSON.stringify(schema)}\n${text}\n${JSON.stringify(check.errors)}`).toBe(true);
      }
    }
    expect(finished).toBeGreaterThan(800);
  });

  it("every format and test pattern: 40 documents each validate (and formats match their own regex)", () => {
    const r = rngFrom(7);
    const cases: Array<{ type: string; format?: string; pattern?: string; maxLength?: number }> = [
      ...FORMAT_NAMES.map((f) => ({ type: "string", format: f })),
      ...PATTERNS.map((p) => ({ type: "string", pattern: p })),
      { type: "string", format: "email", pattern: PATTERNS.at(-1)! }, // zod's .email(): both
      { type: "string", format: "email", maxLength: 254 },
    ];
    for (const schema of cases) {
      const check = ajv.compile(schema);
      const g = compileSchema(schema);
      for (let d = 0; d < 40; d++) {
        const text = randomDocument(g, r, 50_000); // unanchored patterns wait for their match
        expect(text, JSON.stringify(schema)).not.toBeNull();
        expect(check(JSON.parse(text!)), `${JSON.stringify(schema)} ${text}`).toBe(true);
        if (schema.format && !schema.pattern) expect(JSON.parse(text!)).toMatch(new RegExp(FORMATS[schema.format]!));
      }
    }
  });

  it("numeric bounds: integers and decimals stay inside inclusive and exclusive bounds, multipleOf holds", () => {
    const r = rngFrom(99);
    const cases: Array<Record<string, unknown>> = [
      { type: "integer", minimum: -9007199254740991, maximum: 9007199254740991 },
      { type: "integer", minimum: 0, maximum: 120 },
      { type: "integer", exclusiveMinimum: -3, exclusiveMaximum: 3 },
      { type: "integer", minimum: 10, multipleOf: 7 },
      { type: "integer", minimum: -50, maximum: -20, multipleOf: 3 },
      { type: "number", minimum: 0, maximum: 1 },
      { type: "number", exclusiveMinimum: 0 },
      { type: "number", exclusiveMinimum: 0, exclusiveMaximum: 1 },
      { type: "number", minimum: -2.5, maximum: 2.5 },
      { type: "number", exclusiveMinimum: -1, exclusiveMaximum: 0 },
      { type: "number", minimum: -3.4028234663852886e38, maximum: 3.4028234663852886e38 },
      { type: "number", multipleOf: 5, maximum: 100 },
    ];
    for (const schema of cases) {
      const check = ajv.compile(schema);
      const g = compileSchema(schema);
      for (let d = 0; d < 60; d++) {
        const text = randomDocument(g, r);
        expect(text, JSON.stringify(schema)).not.toBeNull();
        expect(check(JSON.parse(text!)), `${JSON.stringify(schema)} ${text}`).toBe(true);
      }
    }
  });

  it("token-level walks at temperature 1 over the real vocabulary's masks validate too", () => {
    const vocab = mistralVocab(2);
    const rng = createRng(11);
    const r = rngFrom(5);
    let finished = 0;
    for (let i = 0; i < 25; i++) {
      const schema = randomSchema(r);
      const check = ajv.compile(schema);
      const compiled = compileResponseFormat({ type: "json_schema", schema }, manifest);
      for (let d = 0; d < 3; d++) {
        const out = randomWalk(new Constraint(compiled), vocab, rng, 400);
        const text = Buffer.concat(out).toString();
        let value: unknown;
        try {
          value = JSON.parse(text);
        } catch {
          continue; // stopped by the token limit mid-document
        }
        finished++;
        expect(check(value), `${JSON.stringify(schema)}\n${text}`).toBe(true);
      }
    }
    expect(finished).toBeGreaterThan(25);
  });
});
