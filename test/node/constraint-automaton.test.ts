/**
 * The structured-output automaton, without a model: JSON edge cases, the whitespace policy (one separator
 * style per document), schema compile errors. Its token masks are in constraint-masks.test.ts.
 */
import { describe, expect, it } from "vitest";
import { accepting, advance, initialState, MAX_CONFIGS } from "../../gpu-backend/engine/constraint/automaton";
import { compileResponseFormat, ConstraintError, mistralVocab } from "../../gpu-backend/engine/constraint/index";
import { compileSchema, JSON_OBJECT_GRAMMAR, SchemaError, type Grammar } from "../../contract/json-schema";
import { Constraint } from "../../gpu-backend/engine/constraint/token-mask";
import { createRng, sampleToken } from "../../gpu-backend/engine/sampler";
import { TEST_SCHEMAS, validate } from "./helpers/json-schema-check";
import { TINY_MANIFEST } from "./helpers/constraint-fixtures";

const enc = new TextEncoder();
const accepts = (g: Grammar, text: string | Uint8Array) => {
  const s = advance(initialState(g), typeof text === "string" ? enc.encode(text) : text);
  return s?.some(accepting) ?? false;
};
/** Every proper prefix stays alive: the automaton never reaches a dead end on a valid document. */
const prefixesLive = (g: Grammar, text: string) => {
  const b = enc.encode(text);
  for (let i = 1; i <= b.length; i++) if (!advance(initialState(g), b.subarray(0, i))) return false;
  return true;
};
const manifest = TINY_MANIFEST;

describe("JSON automaton (json_object)", () => {
  const g = JSON_OBJECT_GRAMMAR;
  const valid = [
    "{}",
    " {}",
    '{"a":1}',
    '{"a": 1, "b": 2}',
    '{"":""}',
    '{"a":[]}',
    '{"a":{}}',
    '{"a":[[],[{}],{"b":[null,true,false]}]}',
    '{"n":-0}',
    '{"n":0.5}',
    '{"n":-12.75e+3}',
    '{"n":1E-7}',
    '{"n":2e9,"m":0e0}',
    '{"s":"\\"\\\\\\/\\b\\f\\n\\r\\t"}',
    '{"s":"\\u00e9\\u0000\\uFFFF"}',
    '{"s":"\\ud83d\\ude00"}',
    '{"s":"\\uD83D\\uDE00 ok"}',
    '{"s":"é漢😀"}',
    '{"s":"\u007f"}',
    '{"a":1,"a":2}',
  ];
  it.each(valid)("accepts %s, and every prefix stays alive", (t) => {
    expect(accepts(g, t)).toBe(true);
    expect(prefixesLive(g, t)).toBe(true);
    expect(() => JSON.parse(t)).not.toThrow();
  });

  const invalid = [
    "",
    "[]",
    '"x"',
    "1",
    "null",
    "{",
    '{"a":1',
    "{,}",
    '{"a":1,}',
    '{"a":[1,]}',
    "{a:1}",
    "{'a':1}",
    '{"a":01}',
    '{"a":1.}',
    '{"a":.5}',
    '{"a":1e}',
    '{"a":1e+}',
    '{"a":-}',
    '{"a":+1}',
    '{"a":NaN}',
    '{"a":Infinity}',
    '{"a":tru}',
    '{"a":True}',
    '{"a":"\\x41"}',
    '{"a":"\\u12"}',
    '{"a":"\\u12G4"}',
    '{"s":"\\udc00"}',
    '{"s":"\\ud800"}',
    '{"s":"\\ud800x"}',
    '{"s":"\\ud800\\u0041"}',
    '{"a":"tab\there"}',
    '{"a":"nl\nhere"}',
    "{}x",
    "{} ",
    "{}{}",
    '{"a":1}\n',
    // The whitespace policy: one space after ':' or ',' and at the start, nowhere else.
    "  {}",
    "{ }",
    '{"a" :1}',
    '{"a":  1}',
    '{"a":1 }',
    '{\n"a":1}',
    '{"a":[1 ,2]}',
    '{"a":\t1}',
    // Numbers stay finite and exact: at most 15 integer and 15 fraction digits, 2 exponent digits.
    '{"a":1234567890123456}',
    '{"a":1e100}',
    '{"a":0.1234567890123456}',
  ];
  it.each(invalid)("refuses %j", (t) => expect(accepts(g, t)).toBe(false));

  it("bounds the nesting of free-form values (about 30 levels), never an object the grammar requires", () => {
    const nest = (n: number) => `{"a":${"[".repeat(n)}${"]".repeat(n)}}`;
    expect(accepts(g, nest(20))).toBe(true);
    expect(accepts(g, nest(40))).toBe(false);
    const deep = advance(initialState(g), enc.encode(`{"a":${"[".repeat(31)}`))!;
    expect(deep).not.toBeNull();
    expect(advance(deep, enc.encode("["))).toBeNull();
    expect(advance(deep, enc.encode('"x"'))).not.toBeNull(); // still live: scalars and closing remain
  });

  it("refuses invalid UTF-8 inside strings: overlongs, surrogates, beyond U+10FFFF, stray continuations", () => {
    const wrap = (...bytes: number[]) => Uint8Array.from([...enc.encode('{"s":"'), ...bytes, ...enc.encode('"}')]);
    expect(accepts(g, wrap(0xc3, 0xa9))).toBe(true);
    expect(accepts(g, wrap(0xf0, 0x9f, 0x98, 0x80))).toBe(true);
    for (const bad of [
      [0xc0, 0x80],
      [0xc1, 0xbf],
      [0xe0, 0x80, 0x80],
      [0xed, 0xa0, 0x80],
      [0xf4, 0x90, 0x80, 0x80],
      [0xf5, 0x80, 0x80, 0x80],
      [0x80],
      [0xc3],
      [0xe2, 0x82],
    ]) {
      expect(accepts(g, wrap(...bad)), JSON.stringify(bad)).toBe(false);
    }
  });
});

describe("schema grammars", () => {
  it("enforces required, order, additionalProperties, lengths, counts, enum, const, anyOf, $ref", () => {
    const flat = compileSchema(TEST_SCHEMAS.flat);
    expect(accepts(flat, '{"name":"bob","age":3,"active":true}')).toBe(true);
    expect(accepts(flat, '{"name":"bob","age":3,"score":-1.5,"active":false}')).toBe(true);
    expect(accepts(flat, '{"age":3,"name":"bob","active":true}')).toBe(false); // schema order
    expect(accepts(flat, '{"name":"bob","active":true}')).toBe(false); // required age skipped
    expect(accepts(flat, '{"name":"bob","age":3,"active":true,"x":1}')).toBe(false);
    expect(accepts(flat, '{"name":"bob","age":3.5,"active":true}')).toBe(false); // integer
    expect(accepts(flat, '{"name":"0123456789","age":3,"active":true}')).toBe(true);
    expect(accepts(flat, '{"name":"0123456789a","age":3,"active":true}')).toBe(false); // maxLength 10
    expect(accepts(flat, '{"name":"漢字😀\\u00e9\\ud83d\\ude00abcde","age":3,"active":true}')).toBe(true); // 10 code points
    const nested = compileSchema(TEST_SCHEMAS.nested);
    const ok = '{"id":"x","tags":["red"],"owner":{"first":"A","role":"admin","note":null}}';
    expect(accepts(nested, ok)).toBe(true);
    expect(accepts(nested, '{"id":"","tags":["red"],"owner":{"first":"A","role":"admin"}}')).toBe(false); // minLength 1
    expect(accepts(nested, '{"id":"x","tags":[],"owner":{"first":"A","role":"admin"}}')).toBe(false); // minItems 1
    expect(accepts(nested, '{"id":"x","tags":["red","red","red","red"],"owner":{"first":"A","role":"admin"}}')).toBe(
      false,
    );
    expect(accepts(nested, '{"id":"x","tags":["pink"],"owner":{"first":"A","role":"admin"}}')).toBe(false);
    expect(accepts(nested, '{"id":"x","tags":["red"],"owner":{"first":"A","role":"user"}}')).toBe(false);
    expect(accepts(nested, '{"id":"x","tags":["red"],"owner":{"first":"A","role":"admin","note":"abcde"}}')).toBe(
      false,
    );
    const any = compileSchema(TEST_SCHEMAS.anyOf);
    for (const t of ['{"result":{"ok":true,"value":1}}', '{"result":{"ok":false,"error":"e"}}', '{"result":null}'])
      expect(accepts(any, t)).toBe(true);
    expect(accepts(any, '{"result":{"ok":true,"error":"e"}}')).toBe(false);
    expect(accepts(compileSchema({ type: "array", items: { type: "integer" } }), "[1,-2,3]")).toBe(true);
    expect(accepts(compileSchema({ type: "number" }), "12")).toBe(true); // a number at the top ends at end of input
    expect(accepts(compileSchema({ enum: ["a", "ab", 1, { x: [1] }] }), '{"x":[1]}')).toBe(true);
    expect(accepts(compileSchema({ type: "object", additionalProperties: false }), "{}")).toBe(true);
  });

  it("the first ':' and the first ',' fix the document's separator style: one writer's json.dumps or JSON.stringify", () => {
    const g = compileSchema({
      type: "object",
      properties: { a: { type: "array", items: { type: "integer" } }, b: { type: "object" }, c: { type: "string" } },
      required: ["a", "b", "c"],
      additionalProperties: false,
    });
    for (const t of [
      '{"a":[1,2],"b":{"x":1,"y":[3]},"c":"z"}',
      '{"a": [1, 2], "b": {"x": 1, "y": [3]}, "c": "z"}',
      '{"a": [1,2],"b": {"x": 1,"y": [3]},"c": "z"}', // spaced colons, tight commas
      '{"a":[1, 2], "b":{"x":1, "y":[3]}, "c":"z"}',
      ' {"a":[],"b":{},"c":""}', // SentencePiece's leading space is not a separator
    ])
      expect(accepts(g, t), t).toBe(true);
    for (const t of [
      '{"a":[1, 2],"b":{},"c":""}', // a spaced comma after a tight one
      '{"a":[1,2], "b":{},"c":""}',
      '{"a": [1],"b":{},"c":""}', // a tight colon after a spaced one
      '{"a":[1],"b": {},"c":""}',
      '{"a":[1],"b":{"x": 1},"c":""}', // nested objects follow the document's style
    ])
      expect(accepts(g, t), t).toBe(false);
    // Once fixed, a separator's space is forced: jump-forward's runs span it.
    const s = advance(initialState(g), enc.encode('{"a": [1, 2]'))!;
    const next = (bytes: string) => advance(s, enc.encode(bytes)) !== null;
    expect([next(', "b'), next(',"b'), next("}")]).toEqual([true, false, false]); // b, c are required
    const t = advance(s, enc.encode(', "b"'))!;
    expect([advance(t, enc.encode(": ")) !== null, advance(t, enc.encode(":{")) !== null]).toEqual([true, false]);
  });

  it("follows at most MAX_CONFIGS overlapping anyOf options, and what it generates still validates", () => {
    const options = Array.from({ length: 100 }, (_, i) => ({
      type: "object",
      properties: { a: { type: "integer" }, [`k${i}`]: { const: i } },
      required: ["a", `k${i}`],
      additionalProperties: false,
    }));
    const schema = { anyOf: options };
    const g = compileSchema(schema);
    const state = advance(initialState(g), enc.encode('{"a":1,'))!;
    expect(state.length).toBeLessThanOrEqual(MAX_CONFIGS);
    expect(accepts(g, '{"a":1,"k0":0}')).toBe(true);
    const c = new Constraint(compileResponseFormat({ type: "json_schema", schema }, manifest));
    const vocab = mistralVocab(2);
    const rng = createRng(3);
    const out: Uint8Array[] = [];
    const row = new Float32Array(vocab.size);
    for (let i = 0; i < 60 && !c.complete; i++) {
      for (let j = 0; j < row.length; j++) row[j] = rng() * 4 - (vocab.bytes(j)?.length ?? 0);
      expect(c.apply(row)).toBe(true);
      const tok = sampleToken(row, { temperature: 1, top_p: 1, top_k: 0 }, rng);
      c.accept(tok);
      out.push(vocab.bytes(tok)!);
    }
    expect(c.complete).toBe(true);
    expect(validate(JSON.parse(Buffer.concat(out).toString()), schema)).toBeNull();
  });

  const unsupported: Array<[string, unknown]> = [
    ["pattern", { type: "string", pattern: "(a)\\1" }],
    ["format", { type: "string", format: "uri" }],
    ["minimum", { type: "string", minimum: 0 }],
    ["oneOf", { oneOf: [{ type: "string" }, { type: "string", maxLength: 3 }] }],
    ["allOf", { allOf: [{ type: "string" }, { type: "integer" }] }],
    ["not", { not: { type: "string" } }],
    ["patternProperties", { type: "object", patternProperties: {} }],
    ["prefixItems", { type: "array", prefixItems: [] }],
    ["uniqueItems", { type: "array", uniqueItems: true }],
    ["minProperties", { type: "object", minProperties: 1 }],
    ["additionalProperties", { type: "object", additionalProperties: 5 }],
    ["$ref", { $ref: "https://example.com/s.json" }],
    ["$ref", { $ref: "#/$defs/missing" }],
    [
      "$ref",
      {
        $defs: { n: { type: "object", properties: { next: { $ref: "#/$defs/n" } }, required: ["next"] } },
        $ref: "#/$defs/n",
      },
    ],
    ["maxLength", { type: "integer", maxLength: 3 }],
    ["required", { type: "object", properties: { a: {} }, required: ["b"] }],
    ["type", { type: "date" }],
    ["enum", { type: "string", enum: [1, 2] }],
    ["false", { type: "object", properties: { a: false } }],
  ];
  it.each(unsupported)("refuses '%s' with a SchemaError naming it", (keyword, schema) => {
    let e: unknown;
    try {
      compileSchema(schema);
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(SchemaError);
    expect((e as SchemaError).keyword).toBe(keyword);
    expect((e as SchemaError).message).toContain(`'${keyword}'`);
  });

  it("compileResponseFormat caches by schema text and reports errors against response_format.schema", () => {
    const a = compileResponseFormat({ type: "json_schema", schema: TEST_SCHEMAS.flat }, manifest);
    expect(compileResponseFormat({ type: "json_schema", schema: structuredClone(TEST_SCHEMAS.flat) }, manifest)).toBe(
      a,
    );
    expect(() =>
      compileResponseFormat({ type: "json_schema", schema: { type: "string", pattern: "(?=x)" } }, manifest),
    ).toThrow(ConstraintError);
    try {
      compileResponseFormat({ type: "json_schema", schema: { type: "string", pattern: "(?=x)" } }, manifest);
    } catch (e) {
      expect((e as ConstraintError).param).toBe("response_format.schema");
      expect((e as Error).message).toContain("pattern");
    }
  });
});
