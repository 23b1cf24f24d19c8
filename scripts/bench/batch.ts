/**
 * `npm run bench:batch [-- --model small] [--rounds 3] [--samples 5] [--batch-clients 8] [--json]`: what a
 * running batch costs interactive traffic. Starts one backend process and, in alternating rounds, times the
 * same interactive generation (/v1/generate, greedy, fixed length) on the idle backend and while
 * `--batch-clients` clients keep it saturated with `priority: "batch"` generations. For comparison each
 * round also times it under the same load sent without a priority (what the scheduler's priority classes
 * avoid). Prints the median latencies and the ratio per round, and over all rounds.
 *
 * Target: loaded / idle <= 1.5. On a shared machine the figures move ±20% between runs: compare the ratio
 * within one run (the idle and loaded samples alternate in each round), not absolute times across runs.
 */
import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import { WIRE_VERSION, WIRE_VERSION_HEADER, type GenerateRequest } from "../../contract/wire";
import { applyChatTemplate } from "../../worker/tokenizer/index";
import { parseCli, runCli } from "../lib/cli";
import { freePort, spawnUntilReady, stopProcess } from "../lib/processes";

const root = resolve(import.meta.dirname, "../..");
const { values: args } = parseCli("bench:batch", process.argv.slice(2), {
  usage: `usage: npm run bench:batch [-- --model tiny|small|medium] [--rounds 3] [--samples 5] [--batch-clients 8] [--tokens 32] [--batch-slots N] [--json]
Times an interactive generation on an idle backend and while batch-priority generations saturate it.`,
  options: {
    model: { type: "string" },
    rounds: { type: "string" },
    samples: { type: "string" },
    "batch-clients": { type: "string" },
    tokens: { type: "string" },
    "batch-slots": { type: "string" },
    json: { type: "boolean" },
  },
});
const posInt = (name: string, v: string | undefined, d: number) => {
  const n = v === undefined ? d : Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got "${v}"`);
  return n;
};
const model = args.model ?? "small";
const rounds = posInt("rounds", args.rounds, 3);
const samples = posInt("samples", args.samples, 5);
const batchClients = posInt("batch-clients", args["batch-clients"], 8);
const tokens = posInt("tokens", args.tokens, 32);
const batchSlots = args["batch-slots"] === undefined ? null : posInt("batch-slots", args["batch-slots"], 1);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const token = randomBytes(16).toString("hex");
let base = "";
let seq = 0;

/** One generation read to its `done` line; resolves with its wall time in ms. */
async function generate(prompt: string, maxTokens: number, priority?: "batch", signal?: AbortSignal): Promise<number> {
  const body: GenerateRequest = {
    model,
    input_ids: applyChatTemplate([{ role: "user", content: prompt }]),
    max_tokens: maxTokens,
    temperature: 0,
    request_id: `bench_${process.pid}_${++seq}`,
    // A fresh salt per request: no prefix-cache hit makes one sample cheaper than another.
    cache_salt: `s${seq}`,
    ...(priority ? { priority } : {}),
  };
  const t0 = performance.now();
  const res = await fetch(`${base}/v1/generate`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
      [WIRE_VERSION_HEADER]: String(WIRE_VERSION),
    },
    body: JSON.stringify(body),
    signal,
  });
  if (!res.ok) throw new Error(`generate: HTTP ${res.status} ${await res.text()}`);
  await res.text();
  return performance.now() - t0;
}

const interactive = () => generate("Tell me about the weather in Lisbon today.", tokens);

/** Keeps `n` clients generating (long answers) until stopped. */
function saturate(n: number, priority: "batch" | undefined) {
  const stop = new AbortController();
  let done = 0;
  const clients = Array.from({ length: n }, async (_, i) => {
    while (!stop.signal.aborted) {
      try {
        await generate(`Batch job ${i}: write a long essay about rivers.`, 256, priority, stop.signal);
        done++;
      } catch (e) {
        if (!stop.signal.aborted) throw e;
      }
    }
  });
  return {
    done: () => done,
    async stop() {
      stop.abort();
      await Promise.allSettled(clients);
    },
  };
}

async function timedUnder(priority: "batch" | undefined): Promise<number[]> {
  const load = saturate(batchClients, priority);
  // Let the load fill the backend (admitted, decoding) before the first sample.
  await new Promise((r) => setTimeout(r, 1500));
  const xs: number[] = [];
  for (let i = 0; i < samples; i++) xs.push(await interactive());
  await load.stop();
  return xs;
}

async function main(): Promise<void> {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const backend = await spawnUntilReady(
    resolve(root, "node_modules/.bin/tsx"),
    [
      "gpu-backend/main.ts",
      ...["--model", `models/dev/${model}`, "--port", String(port), "--token", token],
      ...(batchSlots === null ? [] : ["--batch-slots", String(batchSlots)]),
    ],
    { cwd: root, env: process.env, ready: /backend ready/, timeoutMs: 240_000, label: "backend" },
  );
  try {
    await interactive(); // warm-up
    const rows: {
      round: number;
      idle_ms: number;
      batch_ms: number;
      ratio: number;
      no_priority_ms: number;
      no_priority_ratio: number;
    }[] = [];
    for (let r = 1; r <= rounds; r++) {
      const idle: number[] = [];
      for (let i = 0; i < samples; i++) idle.push(await interactive());
      const batch = await timedUnder("batch");
      const plain = await timedUnder(undefined);
      const row = {
        round: r,
        idle_ms: Math.round(median(idle)),
        batch_ms: Math.round(median(batch)),
        ratio: Number((median(batch) / median(idle)).toFixed(2)),
        no_priority_ms: Math.round(median(plain)),
        no_priority_ratio: Number((median(plain) / median(idle)).toFixed(2)),
      };
      rows.push(row);
      if (!args.json)
        console.log(
          `round ${r}: interactive idle ${row.idle_ms} ms, under a batch ${row.batch_ms} ms (ratio ${row.ratio}); ` +
            `under the same load without priority ${row.no_priority_ms} ms (ratio ${row.no_priority_ratio})`,
        );
    }
    const summary = {
      model,
      tokens,
      batch_clients: batchClients,
      batch_slots: batchSlots ?? "default",
      samples_per_round: samples,
      rounds: rows,
      median_ratio: median(rows.map((r) => r.ratio)),
      median_no_priority_ratio: median(rows.map((r) => r.no_priority_ratio)),
      target: 1.5,
    };
    if (args.json) console.log(JSON.stringify(summary));
    else
      console.log(
        `median ratio under a batch: ${summary.median_ratio} (target <= ${summary.target}); without priority: ${summary.median_no_priority_ratio}`,
      );
  } finally {
    await stopProcess(backend.child, 10_000);
  }
}

runCli("bench:batch", main);
