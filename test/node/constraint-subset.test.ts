/**
 * What real clients emit: zod 4's z.toJSONSchema and pydantic v2 (fixtures written as pydantic prints
 * them: $defs, anyOf-with-null for Optional, titles everywhere, discriminated unions) compile, and random
 * documents from them validate with ajv + ajv-formats (and zod's own parse). What stays unsupported is a
 * SchemaError naming the keyword and the path.
 */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { compileSchema, SchemaError } from "../../contract/json-schema";
import { makeAjv, randomDocument, rngFrom } from "./helpers/schema-fuzz";

const ajv = makeAjv();

const zodModel = z.object({
  age: z.number().int(),
  email: z.string().email(),
  id: z.string().uuid(),
  code: z.string().regex(/^[A-Z]{3}-\d+$/),
  when: z.string().datetime().optional(),
  day: z.iso.date(),
  at: z.iso.time(),
  span: z.iso.duration(),
  ip: z.ipv4(),
  ip6: z.ipv6(),
  host: z.string().min(1).max(20),
  nested: z.object({ a: z.number().min(0).max(1), b: z.boolean().nullable() }).optional(),
  tags: z.array(z.string()).max(3),
  kind: z.enum(["a", "b"]),
  pair: z.tuple([z.string(), z.number()]),
  counts: z.record(z.string(), z.number().int().nonnegative()),
  either: z.union([z.string(), z.number()]),
  price: z.number().positive(),
  lit: z.literal("x"),
  f: z.float32(),
  i32: z.int32(),
});

const pydanticModel = {
  $defs: {
    Color: { enum: ["red", "green"], title: "Color", type: "string" },
    Address: {
      properties: {
        street: { title: "Street", type: "string" },
        zip: { pattern: "^\\d{5}$", title: "Zip", type: "string" },
      },
      required: ["street", "zip"],
      title: "Address",
      type: "object",
    },
    Cat: {
      properties: {
        pet_type: { const: "cat", title: "Pet Type", type: "string" },
        meows: { title: "Meows", type: "integer" },
      },
      required: ["pet_type", "meows"],
      title: "Cat",
      type: "object",
    },
    Dog: {
      properties: {
        pet_type: { const: "dog", title: "Pet Type", type: "string" },
        barks: { title: "Barks", type: "number" },
      },
      required: ["pet_type", "barks"],
      title: "Dog",
      type: "object",
    },
    Category: {
      properties: {
        name: { title: "Name", type: "string", maxLength: 12 },
        children: { items: { $ref: "#/$defs/Category" }, title: "Children", type: "array", default: [] },
      },
      required: ["name"],
      title: "Category",
      type: "object",
    },
  },
  properties: {
    name: { maxLength: 30, minLength: 1, title: "Name", type: "string" },
    age: { exclusiveMinimum: 0, maximum: 150, title: "Age", type: "integer" },
    score: { anyOf: [{ type: "number", minimum: 0, maximum: 10 }, { type: "null" }], default: null, title: "Score" },
    color: { $ref: "#/$defs/Color", description: "Favourite colour" },
    address: { anyOf: [{ $ref: "#/$defs/Address" }, { type: "null" }], default: null },
    legacy: { allOf: [{ $ref: "#/$defs/Address" }], description: "pydantic v1 wrapped refs in allOf" },
    pet: {
      discriminator: { mapping: { cat: "#/$defs/Cat", dog: "#/$defs/Dog" }, propertyName: "pet_type" },
      oneOf: [{ $ref: "#/$defs/Cat" }, { $ref: "#/$defs/Dog" }],
      title: "Pet",
    },
    tags: { items: { type: "string" }, title: "Tags", type: "array", uniqueItems: false },
    extra: { additionalProperties: { type: "integer" }, title: "Extra", type: "object" },
    point: {
      maxItems: 2,
      minItems: 2,
      prefixItems: [{ type: "number" }, { type: "number" }],
      title: "Point",
      type: "array",
    },
    created: { format: "date-time", title: "Created", type: "string" },
    root: { $ref: "#/$defs/Category" },
    nick: { anyOf: [{ type: "string" }, { type: "null" }], title: "Nick" },
  },
  required: ["name", "age", "color", "pet", "created", "root"],
  title: "Person",
  type: "object",
};

describe("client schemas", () => {
  it("zod 4's toJSONSchema of a realistic model: every random document passes ajv and zod's own parse", () => {
    const schema = z.toJSONSchema(zodModel) as Record<string, unknown>;
    const g = compileSchema(schema);
    const check = ajv.compile(schema);
    const r = rngFrom(3);
    let n = 0;
    for (let i = 0; i < 40; i++) {
      const text = randomDocument(g, r, 20_000);
      if (text === null) continue;
      n++;
      const value = JSON.parse(text);
      expect(check(value), `${text}\n${JSON.stringify(check.errors)}`).toBe(true);
      expect(zodModel.safeParse(value).success, text).toBe(true);
    }
    expect(n).toBeGreaterThan(30);
  });

  it("a pydantic v2 model (refs, Optional, enums, discriminated union, recursion, dict, tuple): documents validate", () => {
    const g = compileSchema(pydanticModel);
    const check = ajv.compile(pydanticModel);
    const r = rngFrom(4);
    let n = 0;
    for (let i = 0; i < 40; i++) {
      const text = randomDocument(g, r, 20_000);
      if (text === null) continue;
      n++;
      expect(check(JSON.parse(text)), `${text}\n${JSON.stringify(check.errors)}`).toBe(true);
    }
    expect(n).toBeGreaterThan(30);
  });

  const refused: Array<[string, string, unknown]> = [
    ["pattern", "#", { type: "string", pattern: "(a)\\1" }],
    ["pattern", "#/properties/p", { type: "object", properties: { p: { type: "string", pattern: "(?<=a)b" } } }],
    ["pattern", "#", { type: "string", pattern: "\\bword" }],
    ["pattern", "#", { type: "string", pattern: "^(a|b)*a(a|b){20}$" }],
    ["format", "#", { type: "string", format: "uri" }],
    ["multipleOf", "#", { type: "number", multipleOf: 0.01 }],
    ["allOf", "#", { allOf: [{ type: "string" }, { type: "integer" }] }],
    [
      "allOf",
      "#",
      {
        allOf: [
          { type: "string", pattern: "a" },
          { type: "string", pattern: "b" },
        ],
      },
    ],
    ["oneOf", "#/oneOf/1", { oneOf: [{ type: "integer" }, { type: "number" }] }],
    ["minProperties", "#", { type: "object", minProperties: 1 }],
    ["patternProperties", "#", { type: "object", patternProperties: { "^a": {} } }],
    ["propertyNames", "#", { type: "object", propertyNames: { pattern: "^a" } }],
    ["items", "#", { type: "array", items: [{ type: "string" }] }],
    ["$ref", "#/$defs/A", { $defs: { A: { $ref: "#/$defs/A" } }, $ref: "#/$defs/A" }],
    ["minimum", "#", { type: "integer", minimum: 5, maximum: 4 }],
  ];
  it.each(refused)("refuses %s at %s", (keyword, path, schema) => {
    let e: unknown;
    try {
      compileSchema(schema);
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(SchemaError);
    expect((e as SchemaError).keyword).toBe(keyword);
    expect((e as SchemaError).path).toBe(path);
  });
});
