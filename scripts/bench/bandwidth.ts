/**
 * A memory read-bandwidth probe that needs nothing but ONNX Runtime: a one-node graph (ReduceMax over the
 * rows of a 256 MiB float tensor, parallel over rows with the intra-op threads) reads every byte once per
 * run and writes almost nothing. The best of several runs is taken, as sysbench does. It sets the decode
 * bound: a decoded token must read every active weight byte at least once, so
 * tokens/s <= bandwidth / (weight bytes read per token).
 *
 * Run alone: `npm run bench:bandwidth -- [--threads 2]` prints GB/s.
 */
import * as ort from "onnxruntime-node";
import { parseCli } from "../lib/cli";
import { DataType, encodeModel } from "../model-builder/onnx-proto";

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
    usage: "usage: npm run bench:bandwidth -- [--threads 2]",
    options: { threads: { type: "string", default: "2" } },
  });
  const threads = Number(values.threads);
  const bps = await measureReadBandwidth(threads);
  console.log(`read bandwidth, ${threads} thread(s): ${(bps / 1e9).toFixed(1)} GB/s`);
}
