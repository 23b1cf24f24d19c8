/**
 * `npm run bench [-- --skip engine,edge] [--with-build]`: runs the benchmark suite and writes bench/RESULTS.md
 * (the README's benchmark table comes from this file). Each sub-benchmark prints one JSON object with --json.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { resolve } from "node:path";
import { parseCli } from "../lib/cli";

const root = resolve(import.meta.dirname, "../..");
const { values: args } = parseCli("bench", process.argv.slice(2), {
  usage: `usage: npm run bench [-- --skip tokenizer,engine,edge,edge-no-inspector] [--with-build]
Runs the benchmarks (each its own npm run bench:NAME -- --json) and writes bench/RESULTS.md.
The model build benchmark (bench:build, a 2 GB checkpoint) runs only with --with-build.`,
  options: { skip: { type: "string" }, "with-build": { type: "boolean" } },
});
const skip = new Set(args.skip ? args.skip.split(",") : []);
if (!args["with-build"]) skip.add("build");

type Json = Record<string, unknown>;

function runBench(name: string, script: string, extra: string[] = []): Json | null {
  if (skip.has(name)) return null;
  console.log(`== bench:${name}`);
  const res = spawnSync(resolve(root, "node_modules/.bin/tsx"), [script, "--json", ...extra], {
    cwd: root,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 64 * 1024 * 1024,
  });
  const last = res.stdout.trim().split("\n").pop() ?? "";
  if (res.status !== 0 || !last.startsWith("{")) {
    console.error(`bench:${name} failed (exit ${res.status})`);
    return null;
  }
  console.log(last);
  return JSON.parse(last) as Json;
}

const fmt = (x: unknown, digits = 1) => (typeof x === "number" ? x.toFixed(digits) : "n/a");
const get = (o: Json | null, ...path: string[]): unknown =>
  path.reduce<unknown>((v, k) => (v && typeof v === "object" ? (v as Json)[k] : undefined), o);

const tokenizer = runBench("tokenizer", "scripts/bench/tokenizer.ts");
const engine = runBench("engine", "scripts/bench/engine.ts", ["--threads", "2"]);
const edge = runBench("edge", "scripts/bench/edge.ts");
const edgeBare = runBench("edge-no-inspector", "scripts/bench/edge.ts", ["--no-inspector"]);
const build = runBench("build", "scripts/bench/build.ts");

const machine = `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
const rows: [string, string, string][] = [];
if (tokenizer) {
  rows.push([
    "Tokenizer throughput (golden docs)",
    `${fmt(get(tokenizer, "mb_per_s"), 2)} MB/s`,
    "npm run bench:tokenizer",
  ]);
  rows.push([
    "Tokenizer, 1M-character prompt",
    `${fmt(get(tokenizer, "one_million_chars_ms"), 0)} ms`,
    "npm run bench:tokenizer",
  ]);
}
if (engine) {
  const cmd = "npm run bench:engine -- --threads 2";
  const graph = `${get(engine, "graph")}${get(engine, "batch_invariant") ? ", batch-invariant" : ""}`;
  for (const c of ["1", "4", "8"])
    rows.push([
      `Decode, ${c} stream(s), perf model (${graph} graph)`,
      `${fmt(get(engine, "decode_tok_s", c))} tok/s`,
      cmd,
    ]);
  for (const c of ["1", "8"])
    rows.push([
      `Decode sampled (temperature 0.7, top_p 0.9), ${c} stream(s)`,
      `${fmt(get(engine, "decode_tok_s_sampled", c))} tok/s`,
      cmd,
    ]);
  for (const n of ["128", "1024"])
    rows.push([`Prefill, ${n}-token prompt`, `${fmt(get(engine, "prefill_tok_s", n))} tok/s`, cmd]);
  rows.push([
    "TTFT 1024 tokens, cold / 90% cached",
    `${fmt(get(engine, "ttft_ms", "cold"), 0)} / ${fmt(get(engine, "ttft_ms", "cached"), 0)} ms`,
    cmd,
  ]);
  rows.push([
    "Backend peak RSS / weights file",
    `${fmt(get(engine, "peak_rss_mb"), 0)} / ${fmt(get(engine, "weights_file_mb"), 0)} MB`,
    cmd,
  ]);
  const ratio = (k: string) => fmt(get(engine, "compare", "ratio", k), 2);
  if (get(engine, "compare"))
    rows.push([
      `${get(engine, "graph")} / ${get(engine, "compare", "graph")} graph, decode 1 / 8 streams, prefill-128`,
      `${ratio("decode_1")}× / ${ratio("decode_8")}× / ${ratio("prefill_128")}×`,
      cmd,
    ]);
  if (get(engine, "unpadded_decode_tok_s"))
    rows.push([
      "Plain (not batch-invariant) graph, decode 1 / 8 streams",
      `${fmt(get(engine, "unpadded_decode_tok_s", "1"))} / ${fmt(get(engine, "unpadded_decode_tok_s", "8"))} tok/s`,
      cmd,
    ]);
}
if (edge) {
  for (const c of ["1", "16"])
    rows.push([
      `Edge added latency, ${c} client(s), p50 / p99`,
      `${fmt(get(edge, "added_latency", c, "p50_ms"), 2)} / ${fmt(get(edge, "added_latency", c, "p99_ms"), 2)} ms`,
      "npm run bench:edge",
    ]);
  rows.push([
    "Local runtime (workerd) CPU per request",
    `${fmt(get(edge, "workerd_cpu_ms_per_request"), 2)} ms`,
    "npm run bench:edge",
  ]);
  rows.push([
    "wrangler's own Node CPU per request (inspector events)",
    `${fmt(get(edge, "wrangler_node_cpu_ms_per_request"), 2)} ms`,
    "npm run bench:edge",
  ]);
  for (const c of ["1", "16"])
    rows.push([
      `Floor: trivial /health via wrangler dev vs backend /health, ${c} client(s), p50`,
      `${fmt(get(edge, "runtime_floor", c, "p50_ms"), 2)} ms`,
      "npm run bench:edge",
    ]);
}
if (edgeBare) {
  for (const c of ["1", "16"])
    rows.push([
      `Edge added latency without wrangler's inspector, ${c} client(s), p50 / p99`,
      `${fmt(get(edgeBare, "added_latency", c, "p50_ms"), 2)} / ${fmt(get(edgeBare, "added_latency", c, "p99_ms"), 2)} ms`,
      "npm run bench:edge -- --no-inspector",
    ]);
  rows.push([
    "workerd CPU per request without the inspector (floor: /health)",
    `${fmt(get(edgeBare, "workerd_cpu_ms_per_request"), 2)} ms (${fmt(get(edgeBare, "runtime_floor_workerd_cpu_ms_per_request"), 2)} ms)`,
    "npm run bench:edge -- --no-inspector",
  ]);
}
if (build)
  rows.push([
    "Model build throughput",
    `${fmt(get(build, "mb_per_s"))} MB/s (peak RSS ${fmt(get(build, "peak_rss_mb"), 0)} MB)`,
    "npm run bench:build",
  ]);

const table = [
  `Machine: ${machine}. Date: ${new Date().toISOString().slice(0, 10)}.`,
  "",
  "| measure | result | command |",
  "|---|---|---|",
  ...rows.map(([m, r, c]) => `| ${m} | ${r} | \`${c}\` |`),
  "",
].join("\n");
mkdirSync(resolve(root, "bench"), { recursive: true });
writeFileSync(resolve(root, "bench/RESULTS.md"), table);
console.log(`\n${table}\nwritten to bench/RESULTS.md`);
