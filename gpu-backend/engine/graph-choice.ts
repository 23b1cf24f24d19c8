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

/**
 * "auto": the padded graph only where it is needed. MLAS's AVX2 dispatch computes a lone row (M = 1) with a
 * kernel whose rounding differs from its M >= 2 kernel, so there a sequence's logits depend on its batch-mates;
 * the AVX-512 dispatch treats every row alike (no M = 1 kernel), so the plain sliced graph is already invariant.
 * The AVX-512 core features that select MLAS's AVX-512 QNBit dispatch are the ones cpuHasMlasQ4Gemm checks.
 */
export type InvariantChoice = boolean | "auto";

export function parseInvariantChoice(v: string | undefined): InvariantChoice {
  if (v === undefined || v === "auto") return "auto";
  if (v === "on") return true;
  if (v === "off") return false;
  throw new Error(`--batch-invariant must be auto, on or off, got "${v}"`);
}

export function needsRowPadding(hasAvx512Core = cpuHasMlasQ4Gemm()): boolean {
  return !hasAvx512Core;
}

export type GraphChoice = GraphForm | "auto";

export interface ResolvedGraph {
  form: GraphForm;
  file: string;
  /** No MatMulNBits sees a lone row (graph.ts `padRows`): logits do not depend on batch-mates. */
  batchInvariant: boolean;
  /** One line for the start-up log. */
  reason: string;
}

export function parseGraphChoice(v: string | undefined): GraphChoice {
  if (v === undefined) return "auto";
  if (v === "auto" || v === "fused" || v === "sliced") return v;
  throw new Error(`--graph must be fused, sliced or auto, got "${v}"`);
}

/** The form "auto" picks on this host; MOE_EDGE_GRAPH=fused|sliced overrides it (benchmarks, odd hosts). */
export function autoForm(
  target: "cpu" | "webgpu" | "cuda" | "wasm",
  hasMlasQ4 = cpuHasMlasQ4Gemm(),
): { form: GraphForm; why: string } {
  if (target === "webgpu" || target === "cuda") return { form: "fused", why: `${target} runs QMoE on int4 directly` };
  if (target === "wasm") return { form: "sliced", why: "the WASM runtime has no fast QMoE" };
  return hasMlasQ4
    ? { form: "sliced", why: "per-expert MatMulNBits (measured faster than MLAS's int4 MoE GEMM on AVX-512 too)" }
    : { form: "sliced", why: "no AVX-512: CPU QMoE would dequantize every chosen expert per call" };
}

export function resolveGraph(
  m: ModelManifest,
  choice: GraphChoice,
  target: "cpu" | "webgpu" | "cuda" | "wasm",
  invariant: InvariantChoice = false,
): ResolvedGraph {
  const isMoe = m.num_experts > 0;
  const wantPadded = invariant === true || (invariant === "auto" && target === "cpu" && needsRowPadding());
  if (!m.graphs) {
    // Built before the sliced form: model.onnx is the fused graph.
    if ((choice === "sliced" && isMoe) || invariant === true)
      throw new Error(
        `model ${m.name} was built before the ${invariant === true ? "batch-invariant" : "sliced"} graph existed: rebuild it (npm run build-model, or npm run models -- --force)`,
      );
    return {
      form: "fused",
      file: "model.onnx",
      batchInvariant: false,
      reason: isMoe ? "fused (older build: no sliced graph; rebuild for the faster CPU graph)" : "dense model",
    };
  }
  const picked = !isMoe
    ? { form: "fused" as const, why: "dense model: one graph" }
    : choice !== "auto"
      ? { form: choice, why: `${choice} (asked for)` }
      : ((a) => ({ form: a.form, why: `${a.form} (auto: ${a.why})` }))(autoForm(target));
  if (wantPadded) {
    if (picked.form === "fused" && isMoe)
      throw new Error("--batch-invariant needs the sliced graph (the fused QMoE graph has no padded variant)");
    if (!m.graphs.batch_invariant)
      throw new Error(
        `model ${m.name} was built before the batch-invariant graph existed: rebuild it (npm run build-model, or npm run models -- --force)`,
      );
    const why = invariant === true ? "asked for" : "auto: this CPU's MLAS rounds a lone row differently";
    return {
      form: picked.form,
      file: m.graphs.batch_invariant,
      batchInvariant: true,
      reason: `${picked.why}, batch-invariant (${why})`,
    };
  }
  const invariantAnyway = target === "cpu" && !needsRowPadding() && (picked.form === "sliced" || !isMoe);
  return { form: picked.form, file: m.graphs[picked.form], batchInvariant: invariantAnyway, reason: picked.why };
}
