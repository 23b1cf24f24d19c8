// Worker thread: quantizes chunks posted by the builder (see quant-pool.ts). Plain JS on purpose.
import { parentPort } from "node:worker_threads";
import { quantizeChunk } from "./quant-kernel.mjs";

let scratch;
parentPort.on("message", (m) => {
  const raws = m.raws.map((b) => new Uint8Array(b));
  const r = quantizeChunk(raws, m.dtypes, m.cnt, m.K, m.bs, scratch);
  scratch = r.scratch;
  parentPort.postMessage({ id: m.id, q: r.q.buffer, scales: r.scales.buffer, raws: m.raws }, [
    r.q.buffer,
    r.scales.buffer,
    ...m.raws,
  ]);
});
