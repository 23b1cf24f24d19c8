/**
 * Which of a model's graphs to run (contract/model-manifest.ts `graphs`; scripts/model-builder/moe-graph.ts):
 *  - "fused" (one QMoE per layer) on GPU EPs, whose QMoE kernels read int4 directly, and on CPUs where MLAS
 *    has its int4 MoE GEMM (AVX-512): there QMoE needs no per-call dequantization.
 *  - "sliced" (per-expert MatMulNBits) on every other CPU: ONNX Runtime 1.30's CPU QMoE dequantizes each
 *    chosen expert to fp32 on every call without AVX-512, while MatMulNBits has AVX2 int4 kernels.
 * Dense models have one graph; both names point at it.
 */
import type { GraphForm, ModelManifest } from "../../contract/model-manifest";
import { cpuHasMlasQ4Gemm } from "./qmoe-weights";

export type GraphChoice = GraphForm | "auto";

export interface ResolvedGraph {
  form: GraphForm;
  file: string;
  /** One line for the start-up log. */
  reason: string;
}

export function parseGraphChoice(v: string | undefined): GraphChoice {
  if (v === undefined) return "auto";
  if (v === "auto" || v === "fused" || v === "sliced") return v;
  throw new Error(`--graph must be fused, sliced or auto, got "${v}"`);
}

/** The form "auto" picks on this host; MOE_EDGE_GRAPH=fused|sliced overrides it (benchmarks, odd hosts). */
export function autoForm(target: "cpu" | "webgpu" | "cuda" | "wasm", hasMlasQ4 = cpuHasMlasQ4Gemm()): { form: GraphForm; why: string } {
  if (target === "webgpu" || target === "cuda") return { form: "fused", why: `${target} runs QMoE on int4 directly` };
  if (target === "wasm") return { form: "sliced", why: "the WASM runtime has no fast QMoE" };
  return hasMlasQ4
    ? { form: "sliced", why: "per-expert MatMulNBits (measured faster than MLAS's int4 MoE GEMM on AVX-512 too)" }
    : { form: "sliced", why: "no AVX-512: CPU QMoE would dequantize every chosen expert per call" };
}

export function resolveGraph(m: ModelManifest, choice: GraphChoice, target: "cpu" | "webgpu" | "cuda" | "wasm"): ResolvedGraph {
  const isMoe = m.num_experts > 0;
  if (!m.graphs) {
    // Built before the sliced form: model.onnx is the fused graph.
    if (choice === "sliced" && isMoe)
      throw new Error(`model ${m.name} was built before the sliced graph existed: rebuild it (npm run build-model, or npm run models -- --force)`);
    return { form: "fused", file: "model.onnx", reason: isMoe ? "fused (older build: no sliced graph; rebuild for the faster CPU graph)" : "dense model" };
  }
  if (!isMoe) return { form: "fused", file: m.graphs.fused, reason: "dense model: one graph" };
  if (choice !== "auto") return { form: choice, file: m.graphs[choice], reason: `${choice} (asked for)` };
  const { form, why } = autoForm(target);
  return { form, file: m.graphs[form], reason: `${form} (auto: ${why})` };
}
