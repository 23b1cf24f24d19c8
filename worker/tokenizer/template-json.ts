/**
 * JSON as Python's `json.dumps` writes it by default (", " and ": " separators), non-ASCII kept: the text
 * Mistral's instruct formats were trained on for tool definitions, calls and results. Keys keep their order.
 */
export function pyJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(pyJson).join(", ")}]`;
  if (value !== null && typeof value === "object") {
    const parts: string[] = [];
    for (const [k, v] of Object.entries(value)) if (v !== undefined) parts.push(`${JSON.stringify(k)}: ${pyJson(v)}`);
    return `{${parts.join(", ")}}`;
  }
  // JSON.stringify(undefined) is undefined: an absent value renders as null, like a JSON array hole.
  return JSON.stringify(value) ?? "null";
}
