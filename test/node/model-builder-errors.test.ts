/**
 * The model builder's refusals: bad checkpoints and bad arguments get one clear line (CheckpointError,
 * exit 1 from the CLI), never a stack trace.
 */
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync, truncateSync, openSync, writeSync, closeSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { buildModel } from "../../scripts/model-builder/build";
import { CheckpointError } from "../../scripts/model-builder/safetensors";
import { denseCfg, moeCfg, useCheckpointDir } from "./helpers/checkpoints";
import { repoRoot } from "./helpers/paths";

const fx = useCheckpointDir();
const ckpt = fx.ckpt;

describe("model builder errors", () => {
  const build = (inDir: string, extra: Partial<Parameters<typeof buildModel>[0]> = {}) =>
    buildModel({ inDir, outDir: path.join(fx.tmp(), "out", "err"), quiet: true, threads: 0, ...extra });
  const rejects = async (p: Promise<unknown>, re: RegExp) => {
    const e = await p.then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(CheckpointError);
    expect((e as Error).message).toMatch(re);
    expect((e as Error).message).not.toContain("\n");
  };

  it("unsupported architecture", async () => {
    const dir = await ckpt("arch", denseCfg);
    const cfg = JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8"));
    writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...cfg, architectures: ["LlamaForCausalLM"] }));
    await rejects(build(dir), /unsupported architecture LlamaForCausalLM/);
  });

  it("missing, extra and misshapen tensors", async () => {
    const missing = await ckpt("missing", moeCfg, {
      mutate: (t) => t.filter((x) => x.name !== "model.layers.1.block_sparse_moe.experts.3.w2.weight"),
    });
    await rejects(build(missing), /missing 1 tensor\(s\): model\.layers\.1\.block_sparse_moe\.experts\.3\.w2\.weight/);
    const extra = await ckpt("extra", moeCfg, {
      mutate: (t) => [...t, { name: "model.layers.0.bogus.weight", shape: [4] }],
    });
    await rejects(build(extra), /unexpected tensor\(s\).*model\.layers\.0\.bogus\.weight/);
    const shape = await ckpt("shape", moeCfg, {
      mutate: (t) =>
        t.map((x) => (x.name === "model.layers.0.self_attn.k_proj.weight" ? { ...x, shape: [64, 64] } : x)),
    });
    await rejects(build(shape), /k_proj\.weight has shape \[64, 64\], expected \[32, 64\]/);
  });

  it("truncated or corrupt safetensors", async () => {
    const dir = await ckpt("trunc", denseCfg);
    const file = path.join(dir, "model.safetensors");
    const size = readFileSync(file).length;
    truncateSync(file, size - 10);
    await rejects(build(dir), /truncated/);
    truncateSync(file, 4);
    await rejects(build(dir), /truncated/);
    const bad = await ckpt("corrupt", denseCfg);
    const fd = openSync(path.join(bad, "model.safetensors"), "r+");
    writeSync(fd, Buffer.from("{{{{"), 0, 4, 8);
    closeSync(fd);
    await rejects(build(bad), /corrupt safetensors header/);
    const fd2 = openSync(path.join(bad, "model.safetensors"), "r+");
    writeSync(fd2, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0]), 0, 8, 0);
    closeSync(fd2);
    await rejects(build(bad), /corrupt or truncated safetensors header/);
  });

  it("dims not divisible by the block size, bad options", async () => {
    const dir = await ckpt("div", { ...denseCfg, hidden_size: 96, head_dim: 24 });
    await rejects(build(dir, { blockSize: 64 }), /hidden_size 96 is not divisible by the block size 64/);
    await rejects(build(dir, { blockSize: 48 }), /--block-size must be one of/);
    await rejects(build(dir, { contextLength: 100000 }), /exceeds the model's max_position_embeddings/);
  });

  it("output dir not writable, input missing", async () => {
    const dir = await ckpt("outdir", denseCfg);
    const file = path.join(fx.tmp(), "a-file");
    writeFileSync(file, "x");
    await rejects(build(dir, { outDir: path.join(file, "sub") }), /output directory .* is not writable/);
    await rejects(build(path.join(fx.tmp(), "nope")), /input directory .* does not exist/);
    await rejects(build(fx.tmp()), /has no config\.json/);
  });

  it("CLI: one-line error on stderr, exit code 1, no stack trace", () => {
    const tsx = path.join(repoRoot, "node_modules/.bin/tsx");
    const cli = path.join(repoRoot, "scripts/build-model.ts");
    const noIn = spawnSync(tsx, [cli, "--out", path.join(fx.tmp(), "x")], { encoding: "utf8" });
    expect(noIn.status).toBe(1);
    expect(noIn.stderr.trim().split("\n")).toHaveLength(1);
    expect(noIn.stderr).toMatch(/--in is required/);
    const bad = spawnSync(tsx, [cli, "--in", path.join(fx.tmp(), "nope"), "--out", path.join(fx.tmp(), "x")], {
      encoding: "utf8",
    });
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim()).toMatch(/^build-model: error: input directory .* does not exist$/);
    expect(bad.stderr).not.toMatch(/\n\s+at /);
  });
});
