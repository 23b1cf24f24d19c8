/** The JSON schema bench:engine decodes with and bench:xgrammar compiles: the same automaton work in both. */

/** Objects with an integer, an enum and a short string: many distinct automaton states, none of them final. */
export const JSON_BENCH_SCHEMA = {
  type: "object",
  properties: {
    items: {
      type: "array",
      minItems: 64,
      items: {
        type: "object",
        properties: {
          id: { type: "integer" },
          tag: { enum: ["alpha", "beta", "gamma"] },
          note: { type: "string", maxLength: 8 },
        },
        required: ["id", "tag", "note"],
        additionalProperties: false,
      },
    },
  },
  required: ["items"],
  additionalProperties: false,
};
