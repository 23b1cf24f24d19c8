/**
 * A tiny JSON Schema validator for the structured-output tests, written apart from the compiler
 * (gpu-backend/engine/constraint/schema.ts) so a bug there is not mirrored here. Covers the supported subset:
 * type (string or list), properties, required, additionalProperties: false, items, enum, const,
 * minItems/maxItems, minLength/maxLength (code points), anyOf, $ref into $defs/definitions.
 * Returns the first problem as a string, or null when the value validates.
 */
type Schema = boolean | { [k: string]: unknown };

export function validate(value: unknown, schema: Schema, root: Schema = schema, at = "$"): string | null {
  if (schema === true) return null;
  if (schema === false) return `${at}: false schema`;
  const s = schema;
  if (typeof s.$ref === "string") {
    const [, kind, name] = /^#\/(\$defs|definitions)\/(.+)$/.exec(s.$ref) ?? [];
    const defs = (root as Record<string, Record<string, Schema>>)[kind!];
    return validate(value, defs![name!]!, root, at);
  }
  if (Array.isArray(s.anyOf)) {
    const ok = (s.anyOf as Schema[]).some((o) => validate(value, o, root, at) === null);
    if (!ok) return `${at}: matches no anyOf option`;
  }
  if (s.const !== undefined && JSON.stringify(s.const) !== JSON.stringify(value)) return `${at}: not the const`;
  if (Array.isArray(s.enum) && !s.enum.some((e) => JSON.stringify(e) === JSON.stringify(value)))
    return `${at}: not in enum`;
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
    if (!types.some((t) => isType(value, t))) return `${at}: not of type ${types.join("|")}`;
  }
  if (typeof value === "string") {
    const n = [...value].length;
    if (typeof s.minLength === "number" && n < s.minLength) return `${at}: shorter than ${s.minLength}`;
    if (typeof s.maxLength === "number" && n > s.maxLength) return `${at}: longer than ${s.maxLength}`;
  }
  if (Array.isArray(value)) {
    if (typeof s.minItems === "number" && value.length < s.minItems) return `${at}: fewer than ${s.minItems} items`;
    if (typeof s.maxItems === "number" && value.length > s.maxItems) return `${at}: more than ${s.maxItems} items`;
    if (s.items !== undefined) {
      for (const [i, v] of value.entries()) {
        const e = validate(v, s.items as Schema, root, `${at}[${i}]`);
        if (e) return e;
      }
    }
  }
  if (isType(value, "object")) {
    const obj = value as Record<string, unknown>;
    const props = (s.properties ?? {}) as Record<string, Schema>;
    for (const r of (s.required ?? []) as string[]) if (!(r in obj)) return `${at}: missing ${r}`;
    for (const [k, v] of Object.entries(obj)) {
      if (k in props) {
        const e = validate(v, props[k]!, root, `${at}.${k}`);
        if (e) return e;
      } else if (s.additionalProperties === false) return `${at}: unexpected ${k}`;
    }
  }
  return null;
}

function isType(v: unknown, t: string): boolean {
  switch (t) {
    case "object":
      return typeof v === "object" && v !== null && !Array.isArray(v);
    case "array":
      return Array.isArray(v);
    case "string":
      return typeof v === "string";
    case "integer":
      return typeof v === "number" && Number.isInteger(v);
    case "number":
      return typeof v === "number" && Number.isFinite(v);
    case "boolean":
      return typeof v === "boolean";
    case "null":
      return v === null;
    default:
      return false;
  }
}

/** The three schemas of the structured-output tests: flat, nested with arrays and enums, anyOf. */
export const TEST_SCHEMAS: Record<string, Schema> = {
  flat: {
    type: "object",
    properties: {
      name: { type: "string", maxLength: 10 },
      age: { type: "integer" },
      score: { type: "number" },
      active: { type: "boolean" },
    },
    required: ["name", "age", "active"],
    additionalProperties: false,
  },
  nested: {
    type: "object",
    properties: {
      id: { type: "string", minLength: 1, maxLength: 6 },
      tags: { type: "array", items: { enum: ["red", "green", "blue"] }, minItems: 1, maxItems: 3 },
      owner: { $ref: "#/$defs/person" },
      points: { type: "array", items: { type: "array", items: { type: "integer" }, maxItems: 2 }, maxItems: 2 },
    },
    required: ["id", "tags", "owner"],
    additionalProperties: false,
    $defs: {
      person: {
        type: "object",
        properties: {
          first: { type: "string", maxLength: 8 },
          role: { const: "admin" },
          note: { type: ["string", "null"], maxLength: 4 },
        },
        required: ["first", "role"],
        additionalProperties: false,
      },
    },
  },
  anyOf: {
    type: "object",
    properties: {
      result: {
        anyOf: [
          {
            type: "object",
            properties: { ok: { const: true }, value: { type: "number" } },
            required: ["ok", "value"],
            additionalProperties: false,
          },
          {
            type: "object",
            properties: { ok: { const: false }, error: { type: "string", maxLength: 12 } },
            required: ["ok", "error"],
            additionalProperties: false,
          },
          { type: "null" },
        ],
      },
    },
    required: ["result"],
    additionalProperties: false,
  },
};
