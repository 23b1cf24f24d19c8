/**
 * buildModel: Hugging Face Mixtral/Mistral checkpoint -> int4 ONNX (model.onnx + model.onnx.data + model.json).
 * Streams tensor by tensor; see weights.ts for the memory bound.
 */
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { access, mkdir, open, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { ModelManifest } from "../../contract/model-manifest";
import { buildGraph, GRAPH_IR_VERSION, GRAPH_OPSETS, type GraphPlan } from "./graph";
import { encodeModel, type TensorDef } from "./onnx-proto";
import { createProgress } from "./progress";
import { defaultThreads, QuantPool } from "./quant-pool";
import { type Checkpoint, CheckpointError, openCheckpoint } from "./safetensors";
import { checkTensors, deriveSpec, expectedTensors, type ModelSpec } from "./spec";
import { jobInputBytes, layoutInitializers, WeightWriter } from "./weights";

export const MODEL_FILE = "model.onnx";
export const SLICED_MODEL_FILE = "model.sliced.onnx";
export const INVARIANT_MODEL_FILE = "model.batch-invariant.onnx";
export const WEIGHTS_FILE = "model.onnx.data";
export const MANIFEST_FILE = "model.json";

export interface BuildModelOptions {
  inDir: string;
  outDir: string;
  /** Serving name for model.json (default: the output directory's name). */
  name?: string;
  blockSize?: number;
  accuracyLevel?: number;
  contextLength?: number;
  /** No progress output. */
  quiet?: boolean;
  /** Quantizer worker threads (0 = quantize on the main thread). Default: all cores. */
  threads?: number;
}

export interface BuildSummary {
  manifest: ModelManifest;
  params: number;
  inputBytes: number;
  outputBytes: number;
  seconds: number;
  /** CPU time of the whole process (all threads): a throughput figure that survives a busy machine. */
  cpuSeconds: number;
  peakRssBytes: number;
}

async function prepareOutDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK);
  } catch (e) {
    throw new CheckpointError(
      `output directory ${dir} is not writable (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
    );
  }
}

/** sha256 over config.json and every shard's safetensors header: identifies the source cheaply. */
export function sourceChecksum(ckpt: Checkpoint): string {
  const h = createHash("sha256");
  h.update(ckpt.configText);
  for (const { file, json } of ckpt.headers) h.update(`\0${file}\0${json}`);
  return h.digest("hex");
}

function sourceDtype(ckpt: Checkpoint): "bf16" | "f16" | "f32" {
  const d = ckpt.tensors.get("model.embed_tokens.weight")!.dtype;
  return d === "BF16" ? "bf16" : d === "F16" ? "f16" : "f32";
}

function manifestFor(s: ModelSpec, name: string, ckpt: Checkpoint, inputs: string[], outputs: string[]): ModelManifest {
  const sliced = s.moe ? SLICED_MODEL_FILE : MODEL_FILE;
  return {
    format: "moe-edge-onnx",
    format_version: 1,
    name,
    architecture: s.architecture,
    hidden_size: s.hidden,
    intermediate_size: s.inter,
    num_layers: s.layers,
    num_heads: s.heads,
    num_kv_heads: s.kvHeads,
    head_dim: s.headDim,
    num_experts: s.experts,
    experts_per_token: s.topK,
    vocab_size: s.vocab,
    context_length: s.context,
    rope_theta: s.ropeTheta,
    rms_norm_eps: s.eps,
    sliding_window: s.slidingWindow,
    bos_token_id: s.bos,
    eos_token_id: s.eos,
    quantization: { method: "int4-symmetric-absmax", block_size: s.blockSize, accuracy_level: s.accuracyLevel },
    tokenizer: { kind: "mistral-v1-sentencepiece", vocab_size: s.vocab },
    io: { inputs, outputs },
    source: { checksum: sourceChecksum(ckpt), bytes: ckpt.dataBytes, dtype: sourceDtype(ckpt) },
    weights_file: WEIGHTS_FILE,
    graphs: { fused: MODEL_FILE, sliced, batch_invariant: INVARIANT_MODEL_FILE },
  };
}

export async function buildModel(opts: BuildModelOptions): Promise<BuildSummary> {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const ckpt = await openCheckpoint(opts.inDir);
  try {
    const spec = deriveSpec(ckpt.config, {
      blockSize: opts.blockSize ?? 32,
      accuracyLevel: opts.accuracyLevel ?? 4,
      contextLength: opts.contextLength,
    });
    checkTensors(ckpt, spec);
    await prepareOutDir(opts.outDir);
    // A stale model.json would mark a half-written build as complete.
    await rm(path.join(opts.outDir, MANIFEST_FILE), { force: true });

    const plan = buildGraph(spec, "fused");
    const { placed, totalBytes } = layoutInitializers(plan.inits);
    const inputBytes = plan.jobs.reduce((a, j) => a + jobInputBytes(j, ckpt), 0);
    const progress = createProgress(inputBytes, `build ${path.basename(opts.outDir)}`, process.stderr, opts.quiet);

    const tmpData = path.join(opts.outDir, `${WEIGHTS_FILE}.partial`);
    const out = await open(tmpData, "w");
    const pool = new QuantPool(opts.threads ?? defaultThreads());
    try {
      // Sparse-extend to the final size first: alignment padding becomes holes.
      await out.truncate(totalBytes);
      const writer = new WeightWriter(ckpt, out, placed, spec, pool, (n) => progress.add(n));
      for (const job of plan.jobs) await writer.run(job);
    } finally {
      await pool.close();
      await out.close();
      progress.stop();
    }
    await rename(tmpData, path.join(opts.outDir, WEIGHTS_FILE));

    const name = opts.name ?? path.basename(path.resolve(opts.outDir));
    const manifest = manifestFor(
      spec,
      name,
      ckpt,
      plan.inputs.map((v) => v.name),
      plan.outputs.map((v) => v.name),
    );
    const encode = (p: GraphPlan): Uint8Array => {
      const used = new Set(p.nodes.flatMap((n) => n.inputs));
      const initializers: TensorDef[] = [];
      for (const d of p.inits) {
        if (!used.has(d.name)) continue;
        // Inline constants are per graph; external ones must sit where the fused layout put them.
        const at = d.inline ? undefined : placed.get(d.name);
        if (!d.inline && at?.byteLength !== d.byteLength)
          throw new Error(`initializer ${d.name} is not in the shared weight layout`);
        initializers.push(
          d.inline
            ? { name: d.name, dataType: d.dataType, dims: d.dims, raw: d.inline }
            : {
                name: d.name,
                dataType: d.dataType,
                dims: d.dims,
                external: { location: WEIGHTS_FILE, offset: at!.offset, length: d.byteLength },
              },
        );
      }
      for (const v of p.views) {
        const of = placed.get(v.of)!;
        initializers.push({
          name: v.name,
          dataType: of.dataType,
          dims: v.dims,
          external: { location: WEIGHTS_FILE, offset: of.offset + v.byteOffset, length: v.byteLength },
        });
      }
      return encodeModel({
        irVersion: GRAPH_IR_VERSION,
        opsets: GRAPH_OPSETS,
        producerName: "moe-edge-model-builder",
        producerVersion: "1",
        graph: { name, nodes: p.nodes, initializers, inputs: p.inputs, outputs: p.outputs },
        metadata: { source_checksum: manifest.source.checksum },
      });
    };
    const proto = encode(plan);
    await writeFile(path.join(opts.outDir, MODEL_FILE), proto);
    let graphBytes = proto.length;
    // Same initializers, same order, so the sliced graphs' views land inside the fused layout.
    const variants: [string, GraphPlan][] = [[INVARIANT_MODEL_FILE, buildGraph(spec, "sliced", true)]];
    if (spec.moe) variants.push([SLICED_MODEL_FILE, buildGraph(spec, "sliced")]);
    for (const [file, p] of variants) {
      const bytes = encode(p);
      await writeFile(path.join(opts.outDir, file), bytes);
      graphBytes += bytes.length;
    }
    await writeFile(path.join(opts.outDir, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + "\n");

    let params = 0;
    for (const shape of expectedTensors(spec).values()) params += shape.reduce((a, b) => a * b, 1);
    return {
      manifest,
      params,
      inputBytes,
      outputBytes: totalBytes + graphBytes,
      seconds: (performance.now() - t0) / 1000,
      cpuSeconds: ((c) => (c.user + c.system) / 1e6)(process.cpuUsage(cpu0)),
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
    };
  } finally {
    await ckpt.close();
  }
}

export function formatSummary(s: BuildSummary): string {
  const p = s.params >= 1e9 ? `${(s.params / 1e9).toFixed(2)}B` : `${(s.params / 1e6).toFixed(1)}M`;
  return (
    `built ${s.manifest.name}: ${p} params, ${(s.inputBytes / 1e9).toFixed(3)} GB in -> ${(s.outputBytes / 1e9).toFixed(3)} GB out, ` +
    `${s.seconds.toFixed(1)} s (${s.cpuSeconds.toFixed(1)} s CPU), ${(s.inputBytes / 1e6 / s.seconds).toFixed(0)} MB/s, peak RSS ${(s.peakRssBytes / 1e6).toFixed(0)} MB`
  );
}
