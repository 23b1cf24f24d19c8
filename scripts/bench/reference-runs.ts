/**
 * One measurement of greedy decode or prefill, on llama.cpp (node-llama-cpp) or on the project's Engine,
 * with the same definition on both sides so their ratio means something:
 *  - decode tok/s: tokens emitted after every stream has its first token, divided by the wall time from
 *    that moment to the last token (so prefill and the first sampled token are outside it);
 *  - prefill tok/s: prompt tokens divided by the wall time to the first token (llama-bench's pp also ends
 *    with the last position's logits).
 * Each side also reports its own internal figure: llama.cpp's llama_perf counters (llama-bench's
 * definition: decode time of single-token batches; prompt eval time), and the Engine's step seconds
 * (bench:engine's definition). llama.cpp counts a multi-sequence batch as prompt eval, so it has no
 * internal decode figure for several streams.
 */
import type { GenerateParams } from "../../contract/wire";
import { DEFAULT_ENGINE_OPTIONS, Engine } from "../../gpu-backend/engine/engine";
import type { ModelRunner } from "../../gpu-backend/engine/model-runner";
import { type LlamaRuntime, type NlcContext, type NlcSequence, perfCounters } from "./llama-cpp";

export interface Figure {
  /** Wall-clock tok/s (see the file comment). */
  tps: number;
  /** The engine's own accounting, or null where it has none. */
  internalTps: number | null;
  /** Tokens the figure counts. */
  tokens: number;
}

/** Tracks when each of `n` streams emits tokens: the window starts once all have their first. */
class Window {
  private firsts = 0;
  private start = 0;
  private last = 0;
  private counted = 0;
  constructor(private readonly n: number) {}
  tokens(stream: { seen: number }, count: number, now: number): void {
    if (stream.seen === 0) {
      stream.seen = 1;
      count -= 1;
      if (++this.firsts === this.n) this.start = now;
    }
    stream.seen += count;
    if (this.firsts === this.n && count > 0) {
      this.counted += count;
      this.last = now;
    }
  }
  figure(internalTps: number | null): Figure {
    return { tps: (1000 * this.counted) / (this.last - this.start), internalTps, tokens: this.counted };
  }
}

/** Greedy decode of `tokens` tokens after each prompt, one sequence of `ctx` per prompt, all at once. */
export async function llamaDecode(
  rt: LlamaRuntime,
  ctx: NlcContext,
  seqs: NlcSequence[],
  prompts: number[][],
  tokens: number,
): Promise<Figure> {
  for (const s of seqs) await s.clearHistory();
  const before = await perfCounters(rt, ctx);
  const w = new Window(prompts.length);
  await Promise.all(
    prompts.map(async (p, i) => {
      const stream = { seen: 0 };
      for await (const _ of seqs[i].evaluate(p, { temperature: 0 })) {
        w.tokens(stream, 1, performance.now());
        if (stream.seen > tokens) break;
      }
    }),
  );
  const after = await perfCounters(rt, ctx);
  const runs = after.evalRuns - before.evalRuns;
  const internal = prompts.length === 1 && runs > 0 ? (1000 * runs) / (after.evalMs - before.evalMs) : null;
  return w.figure(internal);
}

/** Prompt tokens per second to the first token (the prompt in one batch, as llama-bench's pp). */
export async function llamaPrefill(
  rt: LlamaRuntime,
  ctx: NlcContext,
  seq: NlcSequence,
  prompt: number[],
): Promise<Figure> {
  await seq.clearHistory();
  const before = await perfCounters(rt, ctx);
  const t0 = performance.now();
  const it = seq.evaluate(prompt, { temperature: 0 });
  await it.next();
  const ms = performance.now() - t0;
  await it.return();
  const after = await perfCounters(rt, ctx);
  const n = after.promptTokens - before.promptTokens;
  return {
    tps: (1000 * prompt.length) / ms,
    internalTps: n > 0 ? (1000 * n) / (after.promptMs - before.promptMs) : null,
    tokens: prompt.length,
  };
}

/**
 * A request's finish is emitted inside the engine's last step, before the step's time is added to the
 * metrics; the engine's loop ends within the same microtask run, so one macrotask later they are complete.
 */
const settled = () => new Promise((r) => setImmediate(r));

function engine(runner: ModelRunner): Engine {
  // As bench:engine: room for 8 streams, prefix cache off (every run prefills its whole prompt).
  return new Engine(runner, {
    ...DEFAULT_ENGINE_OPTIONS,
    maxBatch: 8,
    kvBudgetBytes: 1024 * 2 ** 20,
    prefixCacheBytes: 0,
    prefillChunk: 512,
  });
}

function greedy(runner: ModelRunner, ids: number[], maxTokens: number, seed: number): GenerateParams {
  return {
    model: runner.manifest.name,
    input_ids: ids,
    max_tokens: maxTokens,
    temperature: 0,
    top_p: 1,
    top_k: 0,
    seed,
    stop_token_ids: [],
    cache_salt: "",
    request_id: "llama-reference",
  };
}

/** The Engine's greedy decode of `tokens` tokens after each prompt, all streams submitted at once. */
export async function oursDecode(runner: ModelRunner, prompts: number[][], tokens: number): Promise<Figure> {
  const e = engine(runner);
  const w = new Window(prompts.length);
  await Promise.all(
    prompts.map(
      (p, i) =>
        new Promise<void>((resolve) => {
          const stream = { seen: 0 };
          e.submit(greedy(runner, p, tokens + 1, i), (out) => {
            if (out.ids.length) w.tokens(stream, out.ids.length, performance.now());
            if (out.finish) resolve();
          });
        }),
    ),
  );
  await settled();
  const m = e.metrics;
  return w.figure((m.completionTokens - prompts.length) / m.stepSeconds.decode);
}

/** The Engine's prompt tokens per second to the first token of one request. */
export async function oursPrefill(runner: ModelRunner, prompt: number[]): Promise<Figure> {
  const e = engine(runner);
  const t0 = performance.now();
  let ms = 0;
  await new Promise<void>((resolve) => {
    e.submit(greedy(runner, prompt, 1, 0), (out) => {
      if (out.ids.length && !ms) ms = performance.now() - t0;
      if (out.finish) resolve();
    });
  });
  await settled();
  return {
    tps: (1000 * prompt.length) / ms,
    internalTps: prompt.length / e.metrics.stepSeconds.prefill,
    tokens: prompt.length,
  };
}
