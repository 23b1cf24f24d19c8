/**
 * `npm run tokenize`: JSON lines on stdin -> JSON lines on stdout, with the Worker's tokenizer.
 *   {"text": "..."}          -> {"ids": [...]}  ids without BOS (as golden.jsonl)
 *   {"messages": [...]}      -> {"ids": [...]}  the whole v1 chat prompt, BOS included (as chat_golden.jsonl)
 * A bad line gives {"error": "..."} and processing goes on. Blank lines are skipped.
 */
import { createInterface } from "node:readline";
import { z } from "zod";
import { ApiError } from "../worker/errors.js";
import { applyChatTemplate, encode } from "../worker/tokenizer/index.js";

const Line = z.union([
  z.object({ text: z.string() }),
  z.object({
    messages: z.array(
      z.object({
        role: z.enum(["system", "user", "assistant", "tool"]),
        content: z.string(),
        prefix: z.boolean().optional(),
      }),
    ),
  }),
]);

function handle(line: string): unknown {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return { error: "invalid JSON" };
  }
  const parsed = Line.safeParse(json);
  if (!parsed.success) return { error: 'expected {"text": string} or {"messages": [{"role", "content"}...]}' };
  try {
    return { ids: "text" in parsed.data ? encode(parsed.data.text) : applyChatTemplate(parsed.data.messages) };
  } catch (e) {
    if (e instanceof ApiError) return { error: e.message };
    throw e;
  }
}

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  if (line.trim() === "") continue;
  process.stdout.write(JSON.stringify(handle(line)) + "\n");
}
