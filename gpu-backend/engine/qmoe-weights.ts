/**
 * Which QMoE CPU path ONNX Runtime 1.30 takes for our int4 graphs, and the model tweak that picks it.
 *
 * ORT's QMoE kernel (contrib_ops/cpu/moe/moe_quantization_cpu.cc) has three int4 paths:
 *  - "prepacked" (expert weights are constant initializers, so PrePack runs): with ORT_USE_MLAS_Q4_GEMM_MOE=1
 *    and an MLAS Q4 GEMM kernel it multiplies MLAS-packed int4 blocks directly (~1.8 ms per layer per decode
 *    token at 1024/3584/8 experts). But MlasQ4GemmPackBSize() returns 0 unless the CPU has AVX-512 (MLAS sets
 *    FpQ4GemmDispatch only on AVX512F/DQ/BW/VL), and then the prepacked path dequantizes the chosen experts
 *    from a transposed, unpacked copy with a scalar per-element loop: ~80 ms per layer, the slowest path.
 *  - "dynamic" (expert weights are graph inputs with initializer defaults, hence not constant, so no PrePack):
 *    dequantizes the chosen experts row by row (vectorised, threaded) and runs SGEMM: ~14-25 ms per layer.
 *    ORT_USE_MLAS_Q4_GEMM_MOE must then stay off: with it, each call re-packs the experts (~260 ms).
 * So the runner keeps the weights constant only where the MLAS Q4 kernel exists, and otherwise declares
 * the QMoE weight/scale initializers as graph inputs. Both paths are exact against the dequantized weights.
 */
import { readFileSync } from "node:fs";
import onnxProto from "onnx-proto";

const { onnx } = onnxProto;

export type QMoeWeightMode = "prepacked" | "dynamic";

/** The CPU features MLAS needs for FpQ4GemmDispatch (its "AVX512Core" branch). Linux only; false elsewhere. */
export function cpuHasMlasQ4Gemm(cpuinfo?: string): boolean {
  let text = cpuinfo;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/cpuinfo", "utf8");
    } catch {
      return false;
    }
  }
  const line = text.split("\n").find((l) => l.startsWith("flags"));
  if (!line) return false;
  const flags = new Set(line.split(":")[1]?.trim().split(/\s+/));
  return ["avx512f", "avx512dq", "avx512bw", "avx512vl"].every((f) => flags.has(f));
}

/** MOE_EDGE_QMOE_WEIGHTS=prepacked|dynamic overrides the CPU check (benchmarks, odd hosts). */
export function defaultQMoeWeightMode(): QMoeWeightMode {
  const forced = process.env.MOE_EDGE_QMOE_WEIGHTS;
  if (forced === "prepacked" || forced === "dynamic") return forced;
  if (forced) throw new Error(`MOE_EDGE_QMOE_WEIGHTS must be "prepacked" or "dynamic" (got "${forced}")`);
  return cpuHasMlasQ4Gemm() ? "prepacked" : "dynamic";
}

let ourQ4Env: string | undefined;

/**
 * Sets ORT_USE_MLAS_Q4_GEMM_MOE for the next session (ORT reads it when the kernel is created): "1" for
 * prepacked, "0" for dynamic. A value someone else set (not the one this function last wrote) is respected.
 */
export function applyQ4GemmEnv(mode: QMoeWeightMode): void {
  const current = process.env.ORT_USE_MLAS_Q4_GEMM_MOE;
  if (current !== undefined && current !== ourQ4Env) return;
  ourQ4Env = mode === "prepacked" ? "1" : "0";
  process.env.ORT_USE_MLAS_Q4_GEMM_MOE = ourQ4Env;
}

/** QMoE inputs holding expert weights and scales: fc1 weights/scales, fc2 weights/scales. */
const QMOE_WEIGHT_INPUTS = [2, 3, 5, 6];

/**
 * Returns the model with every QMoE expert weight/scale initializer also declared as a graph input,
 * which makes ORT treat it as overridable (non-constant): no PrePack, the "dynamic" path above.
 * Returns null when the model has no QMoE node.
 */
export function withDynamicQMoeWeights(modelBytes: Uint8Array): Uint8Array | null {
  const model = onnx.ModelProto.decode(modelBytes);
  const graph = model.graph;
  if (!graph) return null;
  const names = new Set<string>();
  for (const n of graph.node ?? []) {
    if (n.opType !== "QMoE") continue;
    for (const i of QMOE_WEIGHT_INPUTS) {
      const name = n.input?.[i];
      if (name) names.add(name);
    }
  }
  if (names.size === 0) return null;
  const inputs = (graph.input ??= []);
  const declared = new Set(inputs.map((v) => v.name));
  for (const init of graph.initializer ?? []) {
    if (!init.name || !names.has(init.name) || declared.has(init.name)) continue;
    inputs.push(
      onnx.ValueInfoProto.create({
        name: init.name,
        type: {
          tensorType: {
            elemType: init.dataType,
            shape: { dim: (init.dims ?? []).map((d) => ({ dimValue: d })) },
          },
        },
      }),
    );
  }
  return onnx.ModelProto.encode(model).finish();
}
