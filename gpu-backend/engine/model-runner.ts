/**
 * The model runner: loads a model dir built by `npm run build-model` (model.onnx + model.json) into an
 * ONNX Runtime session (onnxruntime-node, or onnxruntime-web with runtime "wasm") and runs forward passes.
 * Used by the engine (batched decode / prefill chunks over the KV pool), by embeddings, and by the logits CLI.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import * as ortNode from "onnxruntime-node";
import type { InferenceSession, Tensor as OrtTensor } from "onnxruntime-common";
import {
  pastKeyName,
  pastValueName,
  presentNewKeyName,
  presentNewValueName,
  type ModelManifest,
} from "../../contract/model-manifest";
import type { KvPool } from "./kv-cache";
import { type GraphChoice, type InvariantChoice, type ResolvedGraph, resolveGraph } from "./graph-choice";
import { applyQ4GemmEnv, defaultQMoeWeightMode, type QMoeWeightMode, withDynamicQMoeWeights } from "./qmoe-weights";

export interface RunnerOptions {
  /** Intra-op threads (default: all cores). */
  threads?: number;
  /** Execution provider for the native runtime. */
  ep?: "cpu" | "webgpu" | "cuda";
  /** "wasm" runs the same graph on onnxruntime-web. */
  runtime?: "native" | "wasm";
  /** Let ORT's intra-op threads spin between ops (lower latency, burns idle CPU). Default true. */
  spin?: boolean;
  /** How long an idle intra-op thread spins before it sleeps, µs (when `spin`); default DEFAULT_SPIN_US. */
  spinUs?: number;
  /** Write an ORT profile (JSON) with this prefix. */
  profilePrefix?: string;
  /** QMoE expert weights constant (MLAS int4 GEMM, AVX-512 only) or graph inputs; default by CPU (qmoe-weights.ts). */
  qmoeWeights?: QMoeWeightMode;
  /** MoE form (graph-choice.ts); default "auto". */
  graph?: GraphChoice;
  /** The padded graph whose logits do not depend on batch-mates (graph-choice.ts); default "auto". */
  batchInvariant?: InvariantChoice;
}

export interface ForwardAllResult {
  /** [S, V] row-major: logits at every position. */
  logits: Float32Array;
  /** [S, H] final hidden states (after the final norm). */
  hidden: Float32Array;
}

/** One engine step: a batched decode (S = 1) or a batch-1 prefill chunk, over slots of the KV pool. */
export interface StepInput {
  /** Row-major [B, S] token ids. */
  ids: number[];
  batch: number;
  seqLen: number;
  /** Per sequence: rows already in the KV cache before this step. */
  pastLengths: number[];
  /** First KV slot; the batch occupies slots [firstSlot, firstSlot + batch). */
  firstSlot: number;
  /** Rows of the flattened [B*S] hidden states to project to logits. */
  logitsRows: number[];
}

export interface ModelRunner {
  readonly manifest: ModelManifest;
  /** Which graph runs, and why (logged at start-up). */
  readonly graph: ResolvedGraph;
  /** One prompt, no past: logits and hidden states at every position. */
  forwardAll(ids: number[]): Promise<ForwardAllResult>;
  /** Final hidden states [S, H] of one prompt (no past, no logits fetched back). */
  hidden(ids: number[]): Promise<Float32Array>;
  /** Runs one step, appending the new K/V rows into `pool` in place; returns logits [N, V]. */
  step(pool: KvPool, input: StepInput): Promise<Float32Array>;
  release(): Promise<void>;
}

type OrtModule = typeof ortNode;

/**
 * ORT's own default spins an idle intra-op thread for up to a million pause loops (milliseconds): across the
 * JS between two steps, and against whatever else shares the cores. 50 µs covers the gaps between the nodes
 * of one step, then the thread sleeps. Against the default on a shared 2-vCPU host under load (paired runs,
 * docs/benchmarks.md): 2.3x decode tok/s at 1 stream, 2.2x at 8 streams, two thirds of the CPU per token.
 */
export const DEFAULT_SPIN_US = 50;

export async function loadModelRunner(modelDir: string, opts: RunnerOptions = {}): Promise<ModelRunner> {
  const manifest = JSON.parse(readFileSync(path.join(modelDir, "model.json"), "utf8")) as ModelManifest;
  if (manifest.format !== "moe-edge-onnx") throw new Error(`${modelDir}/model.json is not a moe-edge-onnx manifest`);
  if (!manifest.io.outputs.includes(presentNewKeyName(0)))
    throw new Error(
      `model ${manifest.name} was built before present_new outputs (each step's new KV rows) existed: rebuild it (npm run build-model, or npm run models -- --force)`,
    );
  const runtime = opts.runtime ?? "native";
  const ep = opts.ep ?? "cpu";
  const graph = resolveGraph(
    manifest,
    opts.graph ?? "auto",
    runtime === "wasm" ? "wasm" : ep,
    opts.batchInvariant ?? "auto",
  );
  const modelPath = path.join(modelDir, graph.file);
  let ort: OrtModule;
  let session: InferenceSession;
  const common: InferenceSession.SessionOptions = {
    graphOptimizationLevel: "all",
    executionMode: "sequential",
    enableProfiling: opts.profilePrefix !== undefined,
    profileFilePrefix: opts.profilePrefix,
  };
  if (runtime === "wasm") {
    if (ep !== "cpu") throw new Error(`--runtime wasm supports only --ep cpu (got ${ep})`);
    const web = (await import("onnxruntime-web")) as unknown as OrtModule & { env: { wasm: { numThreads: number } } };
    web.env.wasm.numThreads = opts.threads ?? 1;
    ort = web;
    session = await web.InferenceSession.create(readFileSync(modelPath), {
      ...common,
      executionProviders: ["wasm"],
      externalData: [{ path: manifest.weights_file, data: readFileSync(path.join(modelDir, manifest.weights_file)) }],
    });
  } else {
    // QMoE path (qmoe-weights.ts): MLAS int4 GEMM on prepacked weights where the CPU has it (AVX-512),
    // else non-constant weights so ORT dequantizes row-wise instead of its slow prepacked fallback.
    const qmoeMode = ep === "cpu" ? (opts.qmoeWeights ?? defaultQMoeWeightMode()) : "prepacked";
    if (ep === "cpu") applyQ4GemmEnv(qmoeMode);
    const dynamicModel =
      qmoeMode === "dynamic" && graph.form === "fused" ? withDynamicQMoeWeights(readFileSync(modelPath)) : null;
    ort = ortNode;
    try {
      const sessionOpts: InferenceSession.SessionOptions = {
        ...common,
        executionProviders: [ep],
        intraOpNumThreads: opts.threads,
        interOpNumThreads: 1,
        // The graph-input weights make ORT warn once per initializer; keep errors only.
        ...(dynamicModel ? { logSeverityLevel: 3 as const } : {}),
        // nested keys are flattened by the binding: session.intra_op.allow_spinning
        extra: {
          session: {
            intra_op:
              opts.spin === false
                ? { allow_spinning: "0" }
                : { allow_spinning: "1", spin_duration_us: String(opts.spinUs ?? DEFAULT_SPIN_US) },
            // A model loaded from bytes finds its external data file here.
            ...(dynamicModel ? { model_external_initializers_file_folder_path: path.resolve(modelDir) } : {}),
          },
        },
      };
      session = dynamicModel
        ? await ortNode.InferenceSession.create(dynamicModel, sessionOpts)
        : await ortNode.InferenceSession.create(modelPath, sessionOpts);
    } catch (e) {
      if (ep !== "cpu") {
        const hint =
          ep === "cuda"
            ? "the CUDA execution provider needs onnxruntime-node's CUDA providers (installed without ONNXRUNTIME_NODE_INSTALL=skip on a CUDA host)"
            : "the WebGPU execution provider needs a usable GPU adapter";
        throw new Error(`cannot create a ${ep} session: ${hint} (${(e as Error).message.split("\n")[0]})`);
      }
      throw e;
    }
  }
  return new OrtModelRunner(ort, session, manifest, graph);
}

class OrtModelRunner implements ModelRunner {
  private readonly L: number;
  private readonly kvH: number;
  private readonly D: number;
  private readonly emptyPast: OrtTensor;

  constructor(
    private readonly ort: OrtModule,
    private readonly session: InferenceSession,
    readonly manifest: ModelManifest,
    readonly graph: ResolvedGraph,
  ) {
    this.L = manifest.num_layers;
    this.kvH = manifest.num_kv_heads;
    this.D = manifest.head_dim;
    this.emptyPast = new ort.Tensor("float32", new Float32Array(0), [1, this.kvH, 0, this.D]);
  }

  private baseFeeds(
    ids: number[],
    B: number,
    S: number,
    seqlensK: number[],
    logitsRows: number[],
  ): Record<string, OrtTensor> {
    const T = this.ort.Tensor;
    return {
      input_ids: new T(
        "int64",
        BigInt64Array.from(ids, (x) => BigInt(x)),
        [B, S],
      ),
      seqlens_k: new T("int32", Int32Array.from(seqlensK), [B]),
      total_sequence_length: new T("int32", Int32Array.of(Math.max(...seqlensK) + 1), []),
      logits_indices: new T(
        "int64",
        BigInt64Array.from(logitsRows, (x) => BigInt(x)),
        [logitsRows.length],
      ),
    };
  }

  private noPastFeeds(ids: number[], logitsRows: number[]): Record<string, OrtTensor> {
    const feeds = this.baseFeeds(ids, 1, ids.length, [ids.length - 1], logitsRows);
    for (let l = 0; l < this.L; l++) {
      feeds[pastKeyName(l)] = this.emptyPast;
      feeds[pastValueName(l)] = this.emptyPast;
    }
    return feeds;
  }

  async forwardAll(ids: number[]): Promise<ForwardAllResult> {
    const rows = ids.map((_, i) => i);
    const out = await this.session.run(this.noPastFeeds(ids, rows), ["logits", "last_hidden_state"]);
    return { logits: out.logits!.data as Float32Array, hidden: out.last_hidden_state!.data as Float32Array };
  }

  async hidden(ids: number[]): Promise<Float32Array> {
    const out = await this.session.run(this.noPastFeeds(ids, [ids.length - 1]), ["last_hidden_state"]);
    return out.last_hidden_state!.data as Float32Array;
  }

  async step(pool: KvPool, inp: StepInput): Promise<Float32Array> {
    const { batch: B, seqLen: S } = inp;
    const seqlensK = inp.pastLengths.map((p) => p + S - 1);
    pool.ensureCapacity(Math.max(...seqlensK) + 1);
    const feeds = this.baseFeeds(inp.ids, B, S, seqlensK, inp.logitsRows);
    const { offset, length } = pool.viewRange(inp.firstSlot, B);
    const dims = [B, this.kvH, pool.slotCapacity, this.D];
    // past is a zero-copy view of the pool's slots.
    const fetches: Record<string, OrtTensor | null> = { logits: null };
    for (let l = 0; l < this.L; l++) {
      const k = new this.ort.Tensor("float32", pool.keys[l]!.subarray(offset, offset + length), dims);
      const v = new this.ort.Tensor("float32", pool.values[l]!.subarray(offset, offset + length), dims);
      feeds[pastKeyName(l)] = k;
      feeds[pastValueName(l)] = v;
      // Only the S new rows per sequence come back (kv-cache.ts appends them): fetching present would
      // copy the whole cache into a fresh JS buffer every step.
      fetches[presentNewKeyName(l)] = null;
      fetches[presentNewValueName(l)] = null;
    }
    const out = await this.session.run(feeds, fetches);
    const rows = (name: (l: number) => string) =>
      Array.from({ length: this.L }, (_, l) => out[name(l)]!.data as Float32Array);
    pool.appendStep(inp.firstSlot, inp.pastLengths, S, rows(presentNewKeyName), rows(presentNewValueName));
    return out.logits!.data as Float32Array;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
