/**
 * Small synthetic Hugging Face checkpoints for the model builder's tests: the shared configs and a
 * per-file temp directory (created before the file's tests, removed after).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll } from "vitest";
import type { HfConfig } from "../../../scripts/model-builder/safetensors";
import { writeSyntheticCheckpoint } from "../../../scripts/model-builder/synthetic";

export const common = {
  vocab_size: 512,
  bos_token_id: 1,
  eos_token_id: 2,
  max_position_embeddings: 256,
  rope_theta: 1e6,
  rms_norm_eps: 1e-5,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 16,
  hidden_size: 64,
};
export const moeCfg: HfConfig = {
  ...common,
  architectures: ["MixtralForCausalLM"],
  intermediate_size: 96,
  num_local_experts: 4,
  num_experts_per_tok: 2,
  sliding_window: null,
};
export const denseCfg: HfConfig = {
  ...common,
  architectures: ["MistralForCausalLM"],
  intermediate_size: 128,
  sliding_window: 64,
};

/** A temp dir for this test file, and `ckpt` writing a seeded synthetic checkpoint under it. */
export function useCheckpointDir(prefix = "model-builder-test-") {
  let tmp = "";
  beforeAll(() => {
    tmp = mkdtempSync(path.join(tmpdir(), prefix));
  });
  afterAll(() => {
    rmSync(tmp, { recursive: true, force: true });
  });
  return {
    tmp: () => tmp,
    async ckpt(
      name: string,
      cfg: HfConfig,
      opts: Partial<Parameters<typeof writeSyntheticCheckpoint>[2]> = {},
    ): Promise<string> {
      const dir = path.join(tmp, "hf", name);
      await writeSyntheticCheckpoint(dir, cfg, { seed: 7, shards: 1, ...opts });
      return dir;
    },
  };
}
