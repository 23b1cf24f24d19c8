/**
 * `npm run tokenize`: the Worker's own tokenizer on the command line.
 *   npm run tokenize -- "Hello world"              {"ids": [22557, 1526]}       (no BOS, as golden.jsonl)
 *   npm run tokenize -- --detokenize 22557,1526     {"text": "Hello world"}
 *   JSON lines on stdin -> JSON lines on stdout, one per non-blank line:
 *     {"text": "..."}      -> {"ids": [...]}
 *     {"messages": [...]}  -> {"ids": [...]}  the whole v1 chat prompt, BOS included (as chat_golden.jsonl)
 *     {"ids": [...]}       -> {"text": "..."}
 *   A bad line gives {"error": "..."} and processing goes on.
 * With no argument and a terminal on stdin it prints its usage instead of waiting for input.
 */
import { createInterface } from "node:readline";
import { z } from "zod";
import { applyChatTemplate, decode, encode, TokenizerError } from "../worker/tokenizer/index.js";
import { getVocab } from "../worker/tokenizer/vocab.js";
import { parseCli, runCli, UsageError } from "./lib/cli";

const USAGE = `usage: npm run tokenize -- [--pieces] "text" ...
       npm run tokenize -- --detokenize 22557,1526 ...
       <JSON lines> | npm run tokenize

  "text"          prints {"ids": [...]} for each argument (no BOS)
  --detokenize    arguments are comma-separated ids; prints {"text": "..."} for each
  --pieces        with "text": also print each token's piece ({"ids", "pieces"})
  stdin (no arguments): one JSON object per line, answered line by line:
    {"text": "..."} -> {"ids"}   {"messages": [{"role", "content"}]} -> {"ids"} (chat template, BOS)   {"ids": [...]} -> {"text"}`;

const Line = z.union([
  z.object({ text: z.string() }),
  z.object({ ids: z.array(z.number().int().nonnegative()) }),
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
  if (!parsed.success)
    return { error: 'expected {"text": string}, {"ids": [int]} or {"messages": [{"role", "content"}...]}' };
  const d = parsed.data;
  try {
    if ("ids" in d) return { text: decode(d.ids) };
    return { ids: "text" in d ? encode(d.text) : applyChatTemplate(d.messages) };
  } catch (e) {
    if (e instanceof TokenizerError) return { error: e.message };
    throw e;
  }
}

function parseIds(arg: string): number[] {
  const parts = arg.split(/[,\s]+/).filter(Boolean);
  if (parts.length === 0 || parts.some((p) => !/^\d+$/.test(p)))
    throw new UsageError(`--detokenize takes comma-separated ids, got "${arg}"`);
  return parts.map(Number);
}

async function main(): Promise<void> {
  const { values, positionals } = parseCli("tokenize", process.argv.slice(2), {
    usage: USAGE,
    options: { detokenize: { type: "boolean" }, pieces: { type: "boolean" } },
    positionals: true,
  });
  const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + "\n");
  if (positionals.length > 0) {
    for (const arg of positionals) {
      if (values.detokenize) out({ text: decode(parseIds(arg)) });
      else {
        const ids = encode(arg);
        out(values.pieces ? { ids, pieces: ids.map((id) => getVocab().pieces[id]) } : { ids });
      }
    }
    return;
  }
  if (values.detokenize || values.pieces)
    throw new UsageError("--detokenize and --pieces need arguments; stdin lines say what they are");
  // Never sit silently on a terminal: someone typed `npm run tokenize` and expects output.
  if (process.stdin.isTTY)
    throw new UsageError('nothing to tokenize: give "text" as an argument, or pipe JSON lines on stdin (see --help)');
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    if (line.trim() === "") continue;
    out(handle(line));
  }
}

runCli("tokenize", main);
