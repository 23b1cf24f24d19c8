/**
 * npm run bench:xgrammar — this project's constraint automaton against @mlc-ai/web-xgrammar (xgrammar's
 * own WASM build) on the same schemas and the same Mistral v1 vocabulary:
 *  - compile: schema -> a grammar ready to give its first mask (ours: compile + first mask, caches cold;
 *    xgrammar: compileJSONSchema with its compiler cache off);
 *  - per-token mask time, replaying one token sequence (sampled from our masks at temperature 1 with
 *    seeded random logits) through both: cold (first request with the schema) and warm (a second request);
 *  - coverage: whether xgrammar compiles the schema, and accepts every token of our sequence.
 * Prints one JSON line per schema (`--schema <name>`: only that one). Timings are wall-clock on whatever else
 * the machine is doing.
 */
import { copyFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import mistral from "mistral-tokenizer-js";
import { z } from "zod";
import { compileSchema } from "../../contract/json-schema";
import { mistralVocab } from "../../gpu-backend/engine/constraint/index";
import { CompiledConstraint, Constraint } from "../../gpu-backend/engine/constraint/token-mask";
import { createRng, sampleToken } from "../../gpu-backend/engine/sampler";
import { parseCli } from "../lib/cli";
import { JSON_BENCH_SCHEMA } from "./json-bench-schema";

interface XgMatcher {
  acceptToken(id: number): boolean;
  getNextTokenBitmask(): Promise<Int32Array>;
  isTerminated(): boolean;
  dispose(): void;
}
interface Xg {
  TokenizerInfo: {
    createTokenizerInfo(v: string[], t: string, p: boolean, n: number, stop: number[]): Promise<unknown>;
  };
  GrammarCompiler: {
    createGrammarCompiler(
      t: unknown,
      cache: boolean,
    ): Promise<{ compileJSONSchema(s: string, anyWs: boolean): Promise<unknown> }>;
  };
  GrammarMatcher: { createGrammarMatcher(g: unknown): Promise<XgMatcher> };
}

/** The package's UMD bundle reads require and __filename, which its ESM package type hides: load a CommonJS copy. */
function loadXgrammar(): Xg {
  const require = createRequire(import.meta.url);
  const copy = path.join(tmpdir(), `web-xgrammar-${process.pid}.cjs`);
  copyFileSync(require.resolve("@mlc-ai/web-xgrammar"), copy);
  return require(copy) as Xg;
}

const SCHEMAS: Record<string, unknown> = {
  bench_engine: JSON_BENCH_SCHEMA,
  fixed_keys: {
    type: "object",
    properties: Object.fromEntries(
      ["customer_name", "order_number", "shipping_address", "is_priority", "total"].map((k, i) => [
        k,
        { type: i === 3 ? "boolean" : i === 4 ? "number" : "string" },
      ]),
    ),
    required: ["customer_name", "order_number", "shipping_address", "is_priority", "total"],
  },
  zod_model: z.toJSONSchema(
    z.object({
      age: z.number().int().min(0).max(150),
      email: z.string().email(),
      id: z.string().uuid(),
      code: z.string().regex(/^[A-Z]{3}-\d+$/),
      when: z.string().datetime(),
      tags: z.array(z.string()).max(3),
      nested: z.object({ a: z.number().min(0).max(1), b: z.boolean().nullable() }).optional(),
    }),
  ),
  recursive_tree: {
    $defs: {
      N: {
        type: "object",
        properties: { name: { type: "string" }, kids: { type: "array", items: { $ref: "#/$defs/N" } } },
        required: ["name"],
      },
    },
    $ref: "#/$defs/N",
  },
  formats: {
    type: "object",
    properties: Object.fromEntries(
      ["date-time", "date", "ipv4", "uuid", "hostname"].map((f) => [
        f.replace("-", "_"),
        { type: "string", format: f },
      ]),
    ),
    required: ["date_time", "date", "ipv4", "uuid", "hostname"],
  },
  hostile_64_strings: { anyOf: Array.from({ length: 64 }, (_, i) => ({ type: "string", maxLength: 1_000_000 + i })) },
};

const vocab = mistralVocab(2);
const bytes = (id: number) => vocab.bytes(id) ?? new Uint8Array(0);

/** A token sequence our masks allow (seeded random logits at temperature 1). */
function sampleSequence(compiled: CompiledConstraint, seed: number, maxTokens: number): number[] {
  const rng = createRng(seed);
  const c = new Constraint(compiled);
  const row = new Float32Array(vocab.size);
  const out: number[] = [];
  for (let t = 0; t < maxTokens && !c.complete; t++) {
    for (let j = 0; j < row.length; j++) row[j] = rng() * 4 - bytes(j).length;
    c.apply(row);
    // xgrammar takes no whitespace before the document; ours takes one space (SentencePiece's "▁{").
    if (t === 0) for (let j = 0; j < row.length; j++) if (bytes(j)[0] === 0x20) row[j] = -Infinity;
    const tok = sampleToken(row, { temperature: 1, top_p: 1, top_k: 0 }, rng);
    if (tok === 2) break;
    c.accept(tok);
    out.push(tok);
  }
  return out;
}

/** A mask per token, then the token: what the engine does for a sampled token (masks are computed lazily). */
const ours = (compiled: CompiledConstraint, seq: number[]) => {
  const t0 = performance.now();
  const c = new Constraint(compiled);
  for (const id of seq) {
    c.maskNow();
    c.accept(id);
  }
  return ((performance.now() - t0) * 1000) / Math.max(1, seq.length);
};

async function theirs(
  xg: Xg,
  compiled: unknown,
  seq: number[],
): Promise<{ usPerToken: number; accepted: boolean; refusedAt?: string }> {
  const m = await xg.GrammarMatcher.createGrammarMatcher(compiled);
  const t0 = performance.now();
  const accepted = true;
  for (const id of seq) {
    await m.getNextTokenBitmask();
    if (!m.acceptToken(id)) {
      m.dispose();
      const at = seq.indexOf(id);
      const text = (ids: number[]) => new TextDecoder().decode(Buffer.concat(ids.map(bytes)));
      return { usPerToken: Number.NaN, accepted: false, refusedAt: `${text(seq.slice(0, at))}|${text([id])}|` };
    }
  }
  const us = ((performance.now() - t0) * 1000) / Math.max(1, seq.length);
  m.dispose();
  return { usPerToken: us, accepted };
}

const { values } = parseCli("bench:xgrammar", process.argv.slice(2), {
  usage: "usage: npm run bench:xgrammar -- [--schema <name>]",
  options: { schema: { type: "string" } },
});

async function main(): Promise<void> {
  const xg = loadXgrammar();
  const t0 = performance.now();
  const pieces = (mistral as unknown as { vocabById: string[] }).vocabById;
  const tokenizer = await xg.TokenizerInfo.createTokenizerInfo(pieces, "byte_fallback", true, 32000, [2]);
  const xc = await xg.GrammarCompiler.createGrammarCompiler(tokenizer, false);
  console.log(JSON.stringify({ xgrammar_tokenizer_ms: Math.round(performance.now() - t0) }));
  const only = values.schema;
  for (const [name, schema] of Object.entries(SCHEMAS)) {
    if (only && name !== only) continue;
    // Ours, cold: a new compiled grammar has an empty mask cache.
    let c0 = performance.now();
    const compiled = new CompiledConstraint(compileSchema(schema), vocab);
    new Constraint(compiled).maskNow();
    const oursCompileMs = performance.now() - c0;
    const seq = sampleSequence(compiled, 1, 200);
    const cold = ours(new CompiledConstraint(compileSchema(schema), vocab), seq);
    const warm = ours(compiled, seq);
    const row: Record<string, unknown> = {
      schema: name,
      tokens: seq.length,
      ours_compile_ms: +oursCompileMs.toFixed(1),
      ours_us_per_token_cold: Math.round(cold),
      ours_us_per_token_warm: Math.round(warm),
    };
    try {
      c0 = performance.now();
      const xcompiled = await xc.compileJSONSchema(JSON.stringify(schema), true);
      row.xgrammar_compile_ms = +(performance.now() - c0).toFixed(1);
      const a = await theirs(xg, xcompiled, seq);
      const b = await theirs(xg, xcompiled, seq);
      row.xgrammar_us_per_token_first = Math.round(a.usPerToken);
      row.xgrammar_us_per_token_second = Math.round(b.usPerToken);
      row.xgrammar_accepts_our_output = a.accepted;
      if (a.refusedAt) row.xgrammar_refused_at = a.refusedAt.slice(-80);
    } catch (e) {
      row.xgrammar_error = (e instanceof Error ? e.message : String(e)).slice(0, 160);
    }
    console.log(JSON.stringify(row));
  }
}

await main();
