/**
 * npm run bench:profile -- [--model models/dev/perf] [--threads 2] [--tokens 32] [--streams 1,8] [--top 12]
 * Where one decode step's time goes: an ONNX Runtime profile of decode steps at each stream count, by
 * operator type (summed over the step's nodes), plus the time outside `session.run` (feeds, KV append, the
 * binding) as the step's wall time minus ORT's own `model_run` time. Prefill runs are left out: only the
 * runs this script issues as decode steps (S = 1) are counted, matched by their order in the profile.
 * With --json prints one JSON object (last line).
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseCli } from "../lib/cli";
import { KvPool } from "../../gpu-backend/engine/kv-cache";
import { loadModelRunner } from "../../gpu-backend/engine/model-runner";

const { values } = parseCli("bench:profile", process.argv.slice(2), {
  usage:
    "usage: npm run bench:profile -- [--model models/dev/perf] [--threads 2] [--tokens 32] [--streams 1,8] [--top 12] [--json]",
  options: {
    model: { type: "string", default: "models/dev/perf" },
    threads: { type: "string", default: "2" },
    tokens: { type: "string", default: "32" },
    streams: { type: "string", default: "1,8" },
    top: { type: "string", default: "12" },
    json: { type: "boolean", default: false },
  },
});

interface ProfileEvent {
  cat: string;
  name: string;
  ts: number;
  dur: number;
  args?: { op_name?: string };
}

interface StepProfile {
  streams: number;
  steps: number;
  /** Median wall time of a decode step, ms. */
  step_ms: number;
  /** Median ORT model_run time of a decode step, ms. */
  ort_ms: number;
  /** step_ms - ort_ms: feeds, output copies, KV append, the binding. */
  outside_ms: number;
  /** Per operator type: ms per step (mean) and share of ORT's node time. */
  ops: Array<{ op: string; nodes: number; ms: number; share: number }>;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function profileAt(streams: number, tokens: number): Promise<StepProfile> {
  const dir = mkdtempSync(path.join(tmpdir(), "moe-profile-"));
  const runner = await loadModelRunner(path.resolve(values.model!), {
    threads: Number(values.threads),
    profilePrefix: path.join(dir, "ort"),
  });
  const m = runner.manifest;
  const pool = new KvPool(
    { layers: m.num_layers, kvHeads: m.num_kv_heads, headDim: m.head_dim, maxSeq: m.context_length },
    256 * 2 ** 20,
    streams,
  );
  const promptLen = 32;
  let runs = 0;
  const decodeRuns: number[] = [];
  const wall: number[] = [];
  // Prefill each stream (batch 1, counted as a run but not as a decode step).
  for (let s = 0; s < streams; s++) {
    pool.admit(s + 1, promptLen + tokens + 2);
    const ids = Array.from({ length: promptLen }, (_, i) => 100 + ((i * 7 + s * 13) % 20000));
    await runner.step(pool, {
      ids,
      batch: 1,
      seqLen: promptLen,
      pastLengths: [0],
      firstSlot: s,
      logitsRows: [promptLen - 1],
    });
    runs++;
  }
  const past = Array.from({ length: streams }, () => promptLen);
  for (let t = 0; t < tokens; t++) {
    const ids = past.map((p, s) => 200 + ((p * 31 + s) % 30000));
    const t0 = performance.now();
    await runner.step(pool, {
      ids,
      batch: streams,
      seqLen: 1,
      pastLengths: [...past],
      firstSlot: 0,
      logitsRows: past.map((_, i) => i),
    });
    wall.push(performance.now() - t0);
    // The first few steps warm caches and thread pools: measure the rest.
    if (t >= 4) decodeRuns.push(runs);
    runs++;
    for (let s = 0; s < streams; s++) past[s]! += 1;
  }
  await runner.release();
  const file = readdirSync(dir).find((f) => f.endsWith(".json"));
  if (!file) throw new Error("ONNX Runtime wrote no profile");
  const events = JSON.parse(readFileSync(path.join(dir, file), "utf8")) as ProfileEvent[];
  rmSync(dir, { recursive: true, force: true });

  const runEvents = events.filter((e) => e.cat === "Session" && e.name === "model_run");
  const nodes = events.filter((e) => e.cat === "Node" && e.name.endsWith("_kernel_time"));
  const measured = decodeRuns.map((i) => runEvents[i]!).filter(Boolean);
  const perOp = new Map<string, { us: number; count: number }>();
  let nodeUs = 0;
  for (const run of measured) {
    for (const n of nodes) {
      if (n.ts < run.ts || n.ts > run.ts + run.dur) continue;
      const op = n.args?.op_name ?? "?";
      const cur = perOp.get(op) ?? { us: 0, count: 0 };
      cur.us += n.dur;
      cur.count++;
      perOp.set(op, cur);
      nodeUs += n.dur;
    }
  }
  const steps = measured.length;
  const stepMs = median(wall.slice(4));
  const ortMs = median(measured.map((r) => r.dur / 1000));
  const ops = [...perOp.entries()]
    .map(([op, v]) => ({
      op,
      nodes: Math.round(v.count / steps),
      ms: v.us / 1000 / steps,
      share: v.us / nodeUs,
    }))
    .sort((a, b) => b.ms - a.ms);
  return { streams, steps, step_ms: stepMs, ort_ms: ortMs, outside_ms: stepMs - ortMs, ops };
}

const results: StepProfile[] = [];
for (const s of values.streams!.split(",").map(Number)) results.push(await profileAt(s, Number(values.tokens)));

if (values.json) console.log(JSON.stringify({ threads: Number(values.threads), results }));
else {
  const top = Number(values.top);
  for (const r of results) {
    console.log(
      `\n${r.streams} stream(s), ${r.steps} decode steps: step ${r.step_ms.toFixed(2)} ms (median) = ORT model_run ${r.ort_ms.toFixed(2)} ms + outside session.run ${r.outside_ms.toFixed(2)} ms`,
    );
    console.log("| op type | nodes/step | ms/step | share of node time |\n|---|---|---|---|");
    for (const o of r.ops.slice(0, top))
      console.log(`| ${o.op} | ${o.nodes} | ${o.ms.toFixed(3)} | ${(o.share * 100).toFixed(1)}% |`);
    const rest = r.ops.slice(top);
    if (rest.length)
      console.log(
        `| ${rest.length} other types | ${rest.reduce((a, o) => a + o.nodes, 0)} | ${rest.reduce((a, o) => a + o.ms, 0).toFixed(3)} | ${(rest.reduce((a, o) => a + o.share, 0) * 100).toFixed(1)}% |`,
      );
  }
}
