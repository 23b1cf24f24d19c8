/**
 * Hostile schemas at the unit level: the audit's three and a seeded generator of deep, wide and recursive
 * ones each end in a SchemaError within a second, or compile within a second to a grammar whose masks are
 * bounded (shared mask keys, a step budget). Compile work follows what a schema expands to, not how often
 * it refers to things.
 */
import { describe, expect, it } from "vitest";
import { compileSchema, SchemaError } from "../../contract/json-schema";
import { maskKey } from "../../gpu-backend/engine/constraint/state-keys";
import { compileResponseFormat, ConstraintError, mistralVocab } from "../../gpu-backend/engine/constraint/index";
import { Constraint } from "../../gpu-backend/engine/constraint/token-mask";
import { hostileSchemas } from "./helpers/schema-fuzz";
import { TINY_MANIFEST } from "./helpers/constraint-fixtures";

const manifest = TINY_MANIFEST;
const enc = new TextEncoder();

describe("hostile schemas", () => {
  const cases = hostileSchemas(4242, 22);

  it.each(cases.map((c) => [c.name, c.schema] as const))(
    "%s: a SchemaError, or a small grammar, within a second",
    (_, schema) => {
      const t0 = performance.now();
      let error: unknown = null;
      try {
        compileSchema(schema);
      } catch (e) {
        error = e;
      }
      expect(performance.now() - t0).toBeLessThan(1000);
      if (error !== null) {
        expect(error).toBeInstanceOf(SchemaError);
        expect((error as SchemaError).message).toMatch(/keyword '[^']+' at /);
      }
    },
  );

  it("the audit's doubling chain compiles to one shared node per level, in linear work, with a cheap first mask", () => {
    const defs: Record<string, unknown> = {};
    for (let i = 0; i < 19; i++)
      defs[`d${i}`] = { anyOf: [{ $ref: `#/$defs/d${i + 1}` }, { $ref: `#/$defs/d${i + 1}` }] };
    defs.d19 = { type: "object", properties: { a: { type: "integer" } }, required: ["a"] };
    mistralVocab(2); // built once per process, not part of the schema's cost
    const t0 = performance.now();
    const c = new Constraint(
      compileResponseFormat({ type: "json_schema", schema: { $defs: defs, $ref: "#/$defs/d0" } }, manifest),
    );
    expect(performance.now() - t0).toBeLessThan(1000);
    acceptText(c, '{"a":1}');
    expect(c.complete).toBe(true);
  });

  it("a union of 64 strings with huge distinct maxLengths shares mask keys token after token", () => {
    const schema = { anyOf: Array.from({ length: 64 }, (_, i) => ({ type: "string", maxLength: 1_000_000 + i })) };
    const compiled = compileResponseFormat({ type: "json_schema", schema }, manifest);
    const c = new Constraint(compiled);
    acceptText(c, '"');
    const state = () => (c as unknown as { state: Parameters<typeof maskKey>[0] }).state;
    const keys = new Set<string>();
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) {
      acceptText(c, "abc");
      keys.add(maskKey(state()));
    }
    expect(keys.size).toBe(1);
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it("a deeply nested annotation is refused before anything stringifies it (no stack overflow)", () => {
    const description = JSON.parse(`${"[".repeat(200_000)}${"]".repeat(200_000)}`);
    expect(() =>
      compileResponseFormat({ type: "json_schema", schema: { type: "object", description } }, manifest),
    ).toThrow(ConstraintError);
    expect(() => compileSchema({ type: "object", description: "x".repeat(20_000) })).toThrow(/longer than/);
    expect(() => compileSchema({ type: "object", title: { a: 1 } })).toThrow(/'title' must be a string/);
  });

  it("recursion terminates: a random walk never nests past the bound, and an unescapable recursion is refused", () => {
    const tree = {
      $defs: {
        N: {
          type: "object",
          properties: { kids: { type: "array", items: { $ref: "#/$defs/N" } } },
          required: ["kids"],
        },
      },
      $ref: "#/$defs/N",
    };
    const c = new Constraint(compileResponseFormat({ type: "json_schema", schema: tree }, manifest));
    // Open as deep as the grammar lets us; it must then still be able to close everything.
    let opened = 0;
    for (; opened < 100; opened++) {
      try {
        acceptText(c, opened === 0 ? '{"kids":' : '[{"kids":');
      } catch {
        break;
      }
    }
    expect(opened).toBeLessThan(40);
    const row = new Float32Array(32000);
    expect(c.apply(row)).toBe(true);
    expect(() =>
      compileSchema({
        $defs: { N: { type: "object", properties: { n: { $ref: "#/$defs/N" } }, required: ["n"] } },
        $ref: "#/$defs/N",
      }),
    ).toThrow(SchemaError);
  });

  it("schema caches are per tenant: the same schema under two salts compiles twice, under one salt once", () => {
    const rf = { type: "json_schema" as const, schema: { type: "object", properties: { q: { type: "string" } } } };
    const a = compileResponseFormat(rf, manifest, "tenant-a");
    expect(compileResponseFormat(rf, manifest, "tenant-a")).toBe(a);
    expect(compileResponseFormat(rf, manifest, "tenant-b")).not.toBe(a);
  });
});

/** Byte by byte through the byte-fallback tokens (<0xNN> is id 3 + NN). */
function acceptText(c: Constraint, text: string): void {
  mistralVocab(2);
  for (const b of enc.encode(text)) c.accept(3 + b);
}
