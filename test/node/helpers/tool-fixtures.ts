/** The tools the end-to-end tool tests offer, and the check every returned call must pass. */
import Ajv from "ajv";
import { TEST_SCHEMAS } from "./json-schema-check";

const ajv = new Ajv({ strict: false });
export const model = "mistral-tiny";

export const fn = (
  name: string,
  parameters: Record<string, unknown> | undefined,
  description = `The ${name} tool.`,
) => ({
  type: "function" as const,
  function: { name, description, ...(parameters ? { parameters } : {}) },
});
export const TOOLS = [
  fn("get_weather", {
    type: "object",
    properties: { city: { type: "string", maxLength: 12 }, unit: { enum: ["c", "f"] } },
    required: ["city", "unit"],
    additionalProperties: false,
  }),
  fn("make_person", TEST_SCHEMAS.flat as Record<string, unknown>),
  fn("tag_item", TEST_SCHEMAS.nested as Record<string, unknown>),
  fn("ping", undefined),
];
export const schemaOf = (name: string): Record<string, unknown> =>
  (TOOLS.find((t) => t.function.name === name)?.function.parameters as Record<string, unknown> | undefined) ?? {
    type: "object",
    additionalProperties: false,
  };
export const messages = [{ role: "user" as const, content: "Use a tool." }];
/** Mistral's SDK types require parameters. */
export const MISTRAL_TOOLS = TOOLS.map((t) => ({
  type: "function" as const,
  function: { ...t.function, parameters: schemaOf(t.function.name) },
}));

/** A call as any client gives it back: the problem with it, or null when it is valid. */
export function callProblem(name: string, args: unknown, allowed: string[]): string | null {
  if (!allowed.includes(name)) return `name ${name} is not allowed`;
  const check = ajv.compile(schemaOf(name));
  return check(args) ? null : `${name}: ${ajv.errorsText(check.errors)} in ${JSON.stringify(args)}`;
}
