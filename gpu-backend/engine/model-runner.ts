/**
 * The model runner: loads a model dir built by `npm run build-model` (model.onnx + model.json) into an
 * ONNX Runtime session and runs forward passes. STUB: the engine work owns and implements this; the
 * logits CLI (scripts/logits.ts) and the correctness tests use `load` + `forwardAll`.
 */
import type { ModelManifest } from "../../contract/model-manifest";

export interface RunnerOptions {
  /** Intra-op threads (default: all cores). */
  threads?: number;
  /** Execution provider for the native runtime. */
  ep?: "cpu" | "webgpu" | "cuda";
  /** "wasm" runs the same graph on onnxruntime-web. */
  runtime?: "native" | "wasm";
}

export interface ForwardAllResult {
  /** [S, V] row-major: logits at every position. */
  logits: Float32Array;
  /** [S, H] final hidden states (after the final norm). */
  hidden: Float32Array;
}

export interface ModelRunner {
  readonly manifest: ModelManifest;
  /** One prompt, no past: logits and hidden states at every position. */
  forwardAll(ids: number[]): Promise<ForwardAllResult>;
  release(): Promise<void>;
}

export async function loadModelRunner(_modelDir: string, _opts: RunnerOptions = {}): Promise<ModelRunner> {
  throw new Error("model runner not implemented yet");
}
