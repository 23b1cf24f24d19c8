/**
 * One request's state inside the engine (a scheduler entry with its prompt, output, sampling PRNG and
 * constraint), the plain value the engine hands its caller after each step (EngineOutput: the server
 * renders it as NDJSON), and the errors the engine reports.
 */
import type { BackendTimings, BackendUsage, FinishReason, GenerateParams, TokenLogprob } from "../../contract/wire";
import type { CompiledConstraint, Constraint, Mask } from "./constraint";
import type { TriggerWatch } from "./constraint/trigger";
import { createRng } from "./sampler";
import type { SchedSeq } from "./scheduler";

/** What one step produced for one request (vLLM's RequestOutput, as a plain value). */
export interface EngineOutput {
  /** Tokens new since the previous output, sampled and forced, in order. */
  ids: number[];
  /** One per id, when the request asked for logprobs. */
  logprobs?: TokenLogprob[];
  /** On the request's last output only. */
  finish?: { reason: FinishReason; usage: BackendUsage; timings: BackendTimings; error?: string };
}

/** A forced token whose logprob waits for the row the model computes before it (jump-forward). */
export interface AwaitedToken {
  id: number;
  /** The grammar's mask before it: its logprob is over the tokens the format allowed, like a sampled one's. */
  mask: Mask;
  logprob?: TokenLogprob;
}

export class Sequence implements SchedSeq {
  pos = 0;
  state: SchedSeq["state"] = "waiting";
  readonly generated: number[] = [];
  cached = 0;
  cancelled = false;
  /** Tokens to feed the model next, not yet in the KV cache: the last sampled one and any forced run. */
  feed: number[] = [];
  chunkRound = -1;
  /** Forced tokens waiting for their logprob rows (only when logprobs are asked for). */
  awaited: AwaitedToken[] = [];
  awaitedAt = 0;
  /** The run ends the output: the last forced token is not fed, the sequence finishes once it is committed. */
  endsAfterRun = false;
  /** A logits row kept while its mask is still being computed (the sequence sits out steps meanwhile). */
  held: Float32Array | null = null;
  /** Output of the current step, emitted at its end. */
  outIds: number[] = [];
  outLogprobs: TokenLogprob[] = [];
  readonly rng: () => number;
  readonly tEnqueue = performance.now();
  tAdmit = 0;
  tFirst = 0;
  constructor(
    readonly id: number,
    readonly params: GenerateParams,
    readonly reserve: number,
    readonly emit: (out: EngineOutput) => void,
    /** response_format's logits processor; null (and free) for unconstrained requests, or until the trigger. */
    public constraint: Constraint | null,
    /** With format_trigger: watches free text for it, then `format` becomes the constraint. */
    readonly trigger: TriggerWatch | null = null,
    readonly format: CompiledConstraint | null = null,
  ) {
    this.rng = createRng(params.seed ?? Math.floor(Math.random() * 2 ** 32));
  }
  get promptLen(): number {
    return this.params.input_ids.length;
  }
  /** The scheduler's class (scheduler.ts): batch lines fill only capacity interactive requests leave idle. */
  get priority(): "interactive" | "batch" {
    return this.params.priority ?? "interactive";
  }
  get feedLen(): number {
    return this.held ? 0 : this.feed.length;
  }
  /** The output gathered since the last one; with `end`, the request's final output (usage, timings). */
  takeOutput(end?: { reason: FinishReason; error?: string }): EngineOutput {
    const out: EngineOutput = { ids: this.outIds };
    if (this.params.logprobs) out.logprobs = this.outLogprobs;
    this.outIds = [];
    this.outLogprobs = [];
    if (!end) return out;
    const now = performance.now();
    const admit = this.tAdmit || now;
    const first = this.tFirst || now;
    out.finish = {
      reason: end.reason,
      usage: { prompt_tokens: this.promptLen, cached_tokens: this.cached, completion_tokens: this.generated.length },
      timings: {
        queue_ms: round(admit - this.tEnqueue),
        prefill_ms: this.tAdmit ? round(first - admit) : 0,
        decode_ms: this.tFirst ? round(now - first) : 0,
      },
      ...(end.error ? { error: end.error } : {}),
    };
    return out;
  }

  /** Completion tokens this request may still produce (max_tokens, then the context). */
  get room(): number {
    return Math.min(this.params.max_tokens, this.reserve - this.promptLen) - this.generated.length;
  }
}

const round = (ms: number) => Math.round(ms * 100) / 100;

/** Thrown by submit() for requests that must be rejected before streaming starts. */
export class AdmissionError extends Error {
  constructor(
    message: string,
    readonly status: 400 | 429 | 503,
    readonly code: string,
    /** The request field to blame in a 400. */
    readonly param?: string,
  ) {
    super(message);
  }
}

/**
 * embed() stopped before its last input: cancelled through its signal, or a forward pass failed.
 * `computedTokens` is what was computed before it stopped (the usage witness bills that).
 */
export class EmbedStopped extends Error {
  constructor(
    readonly reason: "cancelled" | "error",
    readonly computedTokens: number,
  ) {
    super(reason === "cancelled" ? "embedding cancelled" : "inference failed");
  }
}
