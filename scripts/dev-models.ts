/**
 * npm run models [-- --preset tiny,small,medium|perf] [--out models/dev] [--hf models/hf] [--force]
 * Generates seeded synthetic Hugging Face checkpoints and converts each with the model builder.
 * Cached: a preset whose model.json matches its current config is skipped.
 */
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import type { ModelManifest } from "../contract/model-manifest";
import { buildModel, formatSummary, MANIFEST_FILE, sourceChecksum } from "./model-builder/build";
import { openCheckpoint } from "./model-builder/safetensors";
import { DEFAULT_PRESETS, PRESETS } from "./model-builder/presets";
import { parseCli } from "./lib/cli";
import { configHash, writeSyntheticCheckpoint } from "./model-builder/synthetic";

/** Bump when the builder's output changes so cached dev models are rebuilt. */
export const BUILDER_REVISION = 7;
const HASH_FIELD = "_moe_edge_preset";

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, "utf8")) as T;
  } catch {
    return undefined;
  }
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

export async function ensurePreset(
  name: string,
  hfRoot: string,
  outRoot: string,
  force = false,
): Promise<"cached" | "built"> {
  const preset = PRESETS[name];
  if (!preset) throw new Error(`unknown preset "${name}" (known: ${Object.keys(PRESETS).join(", ")})`);
  const hash = configHash(preset.config, {
    seed: preset.seed,
    shards: preset.shards,
    extra: { rev: BUILDER_REVISION },
  });
  const hfDir = path.join(hfRoot, name);
  const outDir = path.join(outRoot, name);
  const manifest = await readJson<ModelManifest & { preset?: string }>(path.join(outDir, MANIFEST_FILE));
  const hfConfig = await readJson<Record<string, unknown>>(path.join(hfDir, "config.json"));
  if (
    !force &&
    manifest &&
    manifest.name === name &&
    hfConfig?.[HASH_FIELD] === hash &&
    (await exists(path.join(outDir, manifest.weights_file)))
  ) {
    // model.json's source checksum covers config.json, which carries the preset hash.
    const ckpt = await openCheckpoint(hfDir).catch(() => undefined);
    await ckpt?.close();
    if (ckpt && sourceChecksum(ckpt) === manifest.source.checksum) return "cached";
  }
  if (force || hfConfig?.[HASH_FIELD] !== hash) {
    const t0 = performance.now();
    const bytes = await writeSyntheticCheckpoint(hfDir, preset.config, {
      seed: preset.seed,
      shards: preset.shards,
      extra: { [HASH_FIELD]: hash },
    });
    console.log(
      `generated ${hfDir}: ${(bytes / 1e6).toFixed(1)} MB bf16 in ${preset.shards} shard(s), ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  }
  const summary = await buildModel({ inDir: hfDir, outDir, name });
  console.log(formatSummary(summary));
  return "built";
}

async function main(): Promise<void> {
  const { values } = parseCli("models", process.argv.slice(2), {
    usage: `usage: npm run models [-- --preset ${Object.keys(PRESETS).join(",")}] [--out models/dev] [--hf models/hf] [--force]
Generates seeded synthetic checkpoints (random weights) and converts each with the model builder;
a preset whose model.json matches its current config is skipped. Default presets: ${DEFAULT_PRESETS.join(",")}.`,
    options: {
      preset: { type: "string" },
      out: { type: "string", default: "models/dev" },
      hf: { type: "string", default: "models/hf" },
      force: { type: "boolean", default: false },
    },
  });
  const names = values.preset
    ? values.preset
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean)
    : DEFAULT_PRESETS;
  for (const n of names)
    if (!PRESETS[n]) throw new Error(`unknown preset "${n}" (known: ${Object.keys(PRESETS).join(", ")})`);
  const t0 = performance.now();
  for (const n of names) {
    const r = await ensurePreset(n, values.hf, values.out, values.force);
    if (r === "cached") console.log(`${n}: up to date (${path.join(values.out, n)}), nothing to do`);
  }
  console.log(
    `models ready in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${names.map((n) => path.join(values.out, n)).join(", ")}`,
  );
}

const isMain = process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname);
if (isMain) {
  main().catch((e: unknown) => {
    process.stderr.write(`models: error: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}\n`);
    if (process.env.DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    process.exit(1);
  });
}
