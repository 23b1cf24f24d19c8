/**
 * A memory read-bandwidth probe that needs nothing but ONNX Runtime: a one-node graph (ReduceMax over the
 * rows of a 256 MiB float tensor, parallel over rows with the intra-op threads) reads every byte once per
 * run and writes almost nothing. The best of several runs is taken, as sysbench does. It sets the decode
 * bound: a decoded token must read every active weight byte at least once, so
 * tokens/s <= bandwidth / (weight bytes read per token).
 *
 * Run alone: `npm run bench:bandwidth -- [--threads 2] [--model models/dev/perf]` prints GB/s and, with a
 * model, its weight bytes per decoded token (weight-bytes.ts) and the decode bound they give.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import * as ort from "onnxruntime-node";
import type { ModelManifest } from "../../contract/model-manifest";
import { parseCli } from "../lib/cli";
import { DataType, encodeModel } from "../model-builder/onnx-proto";
import { decodeBytesPerToken } from "./weight-bytes";

const ROWS = 65536;
const COLS = 1024;

function probeModel(): Uint8Array {
  return encodeModel({
    irVersion: 8,
    opsets: [{ domain: "", version: 17 }],
    producerName: "moe-edge-bandwidth-probe",
    producerVersion: "1",
    graph: {
      name: "probe",
      nodes: [
        {
          op: "ReduceMax",
          name: "reduce",
          inputs: ["x"],
          outputs: ["y"],
          attrs: { axes: [1], keepdims: 0 },
        },
      ],
      initializers: [],
      inputs: [{ name: "x", elemType: DataType.FLOAT, shape: [ROWS, COLS] }],
      outputs: [{ name: "y", elemType: DataType.FLOAT, shape: [ROWS] }],
    },
  });
}

/** Read bandwidth in bytes per second (best of `runs`), with `threads` intra-op threads. */
export async function measureReadBandwidth(threads: number, runs = 12): Promise<number> {
  const session = await ort.InferenceSession.create(probeModel(), {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: "all",
  });
  const data = new Float32Array(ROWS * COLS);
  for (let i = 0; i < data.length; i += 1024) data[i] = i;
  const x = new ort.Tensor("float32", data, [ROWS, COLS]);
  let best = Number.POSITIVE_INFINITY;
  try {
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      await session.run({ x });
      best = Math.min(best, performance.now() - t0);
    }
  } finally {
    await session.release();
  }
  return data.byteLength / (best / 1000);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseCli("bench:bandwidth", process.argv.slice(2), {
    usage: "usage: npm run bench:bandwidth -- [--threads 2] [--model models/dev/perf]",
    options: { threads: { type: "string", default: "2" }, model: { type: "string", default: "models/dev/perf" } },
  });
  const threads = Number(values.threads);
  const bps = await measureReadBandwidth(threads);
  console.log(`read bandwidth, ${threads} thread(s): ${(bps / 1e9).toFixed(1)} GB/s`);
  const manifestPath = path.join(values.model!, "model.json");
  if (existsSync(manifestPath)) {
    const m = JSON.parse(readFileSync(manifestPath, "utf8")) as ModelManifest;
    for (const n of [1, 8]) {
      const bytes = decodeBytesPerToken(m, n);
      console.log(
        `${m.name}, ${n} stream(s): ${(bytes / 1e6).toFixed(1)} MB of weights per token -> bound ${(bps / bytes).toFixed(0)} tok/s`,
      );
    }
  }
}
