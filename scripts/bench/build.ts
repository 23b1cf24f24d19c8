/**
 * npm run bench:build [-- --json] [--threads N] [--layers 12] [--keep]
 * Generates (or reuses) a >= 2 GB synthetic bf16 Mixtral-style checkpoint (perf-preset dims, more layers)
 * under models/hf/bench-build, converts it with the real CLI in a child process, and prints input MB/s
 * and the child's peak RSS (worker threads included). The input is usually in the page cache: this
 * measures the converter, not the disk.
 */
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseCli } from "../lib/cli";
import type { BuildSummary } from "../model-builder/build";
import { PRESETS } from "../model-builder/presets";
import { configHash, writeSyntheticCheckpoint } from "../model-builder/synthetic";

const root = path.resolve(import.meta.dirname, "../..");
const { values } = parseCli("bench:build", process.argv.slice(2), {
  usage: `usage: npm run bench:build [-- --json] [--threads N] [--layers 12] [--keep]
Converts a >= 2 GB synthetic bf16 checkpoint (models/hf/bench-build, generated once) with the real
CLI; prints input MB/s and the converter's peak RSS (one JSON object with --json).`,
  options: {
    json: { type: "boolean", default: false },
    threads: { type: "string" },
    layers: { type: "string", default: "12" },
    keep: { type: "boolean", default: false },
  },
});
const log = (s: string) => (values.json ? process.stderr : process.stdout).write(s + "\n");

const perf = PRESETS.perf;
const config = { ...perf.config, num_hidden_layers: Number(values.layers) };
const hfDir = path.join(root, "models/hf/bench-build");
const hash = configHash(config, { seed: 42, shards: 4 });
let existing: string | undefined;
try {
  existing = (JSON.parse(readFileSync(path.join(hfDir, "config.json"), "utf8")) as { _moe_edge_preset?: string })
    ._moe_edge_preset;
} catch {
  existing = undefined;
}
if (existing !== hash) {
  const t0 = performance.now();
  const bytes = await writeSyntheticCheckpoint(hfDir, config, {
    seed: 42,
    shards: 4,
    extra: { _moe_edge_preset: hash },
  });
  log(`generated ${hfDir}: ${(bytes / 1e9).toFixed(2)} GB bf16 in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
} else {
  log(`reusing ${hfDir}`);
}

const outDir = path.join(tmpdir(), `bench-build-${process.pid}`);
const args = [path.join(root, "scripts/build-model.ts"), "--in", hfDir, "--out", outDir, "--json"];
if (values.threads) args.push("--threads", values.threads);
const res = spawnSync(path.join(root, "node_modules/.bin/tsx"), args, {
  encoding: "utf8",
  stdio: ["ignore", "pipe", "inherit"],
});
if (!values.keep) rmSync(outDir, { recursive: true, force: true });
const last = res.stdout.trim().split("\n").pop() ?? "";
if (res.status !== 0 || !last.startsWith("{")) {
  process.stderr.write(`bench:build: the build failed (exit ${res.status})\n`);
  process.exit(1);
}
// `npm run build-model -- --json` prints the build summary's figures (scripts/build-model.ts).
const s = JSON.parse(last) as Omit<BuildSummary, "manifest"> & { mb_per_s: number };
const result = {
  input_gb: s.inputBytes / 1e9,
  output_gb: s.outputBytes / 1e9,
  params_b: s.params / 1e9,
  seconds: s.seconds,
  mb_per_s: s.mb_per_s,
  cpu_seconds: s.cpuSeconds,
  mb_per_cpu_s: s.inputBytes / 1e6 / s.cpuSeconds,
  peak_rss_mb: s.peakRssBytes / 1e6,
  threads: values.threads ? Number(values.threads) : "all cores",
};
if (values.json) console.log(JSON.stringify(result));
else
  console.log(
    `bench:build: ${result.input_gb.toFixed(2)} GB bf16 -> ${result.output_gb.toFixed(2)} GB int4 in ${result.seconds.toFixed(1)} s: ` +
      `${result.mb_per_s.toFixed(0)} MB/s input (${result.mb_per_cpu_s.toFixed(0)} MB per CPU-second), peak RSS ${result.peak_rss_mb.toFixed(0)} MB`,
  );
