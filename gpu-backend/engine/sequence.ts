/**
 * One request's state inside the engine (a scheduler entry with its prompt, output, sampling PRNG and
 * constraint), and the errors the engine reports to its callers.
 */
import type { GenerateEvent, GenerateParams } from "../../contract/wire";
import type { Constraint } from "./constraint";
import { createRng } from "./sampler";
import type { SchedSeq } from "./scheduler";

export class Sequence implements SchedSeq {
  pos = 0;
  state: SchedSeq["state"] = "waiting";
  readonly generated: number[] = [];
  cached = 0;
  cancelled = false;
  lastToken = -1;
  readonly rng: () => number;
  readonly tEnqueue = performance.now();
  tAdmit = 0;
  tFirst = 0;
  constructor(
    readonly id: number,
    readonly params: GenerateParams,
    readonly reserve: number,
    readonly emit: (ev: GenerateEvent) => void,
    /** response_format's logits processor; null (and free) for unconstrained requests. */
    readonly constraint: Constraint | null,
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
}

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
