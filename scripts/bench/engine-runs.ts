/**
 * One measurement of the Engine's greedy decode or prefill, two ways:
 *  - wall clock: decode tok/s = tokens emitted after every stream has its first token, over the wall time
 *    from that moment to the last token (prefill and the first sampled token outside it); prefill tok/s =
 *    prompt tokens over the wall time from submit to the first token;
 *  - steps: the same tokens over the time inside decode (prefill) steps only, bench:engine's definition,
 *    which is the closer analogue of llama-bench and llama-batched-bench (they time llama_decode calls and
 *    sample nothing).
 */
import type { GenerateParams } from "../../contract/wire";
import { DEFAULT_ENGINE_OPTIONS, Engine } from "../../gpu-backend/engine/engine";
import type { ModelRunner } from "../../gpu-backend/engine/model-runner";

export interface Figure {
  /** Wall-clock tok/s (see the file comment). */
  tps: number;
  /** Tok/s over the time inside engine steps. */
  stepTps: number;
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
  figure(stepTps: number): Figure {
    return { tps: (1000 * this.counted) / (this.last - this.start), stepTps, tokens: this.counted };
  }
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
    stepTps: prompt.length / e.metrics.stepSeconds.prefill,
    tokens: prompt.length,
  };
}
