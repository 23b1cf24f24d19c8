/**
 * Budget reservations that grow as tokens stream. A chat request is admitted with its prompt plus the
 * first slice of its completion reserved (not its whole max_tokens, which defaults to the rest of the
 * context and would price a small budget out of plain requests). While tokens flow, the next slice is
 * reserved half a slice ahead of need, in the key's Durable Object (KeyLimiter.extend), which checks it
 * against the budget as strictly as an admit.
 *
 * When a slice is refused, generation may use what is already reserved and then stops: the replica is
 * cancelled and drained, and the client gets finish_reason "length" with `budget_exhausted: true`.
 * Overshoot bound, per request: a top-up that is still unanswered half a slice past the reservation
 * pauses the relay (`stall`) until it is answered, so the edge never lets more than half a slice go
 * unreserved; add the tokens the replica generates while the cancel travels (one or two decode steps),
 * and a request overshoots its budget by less than one slice.
 *
 * COMPLETION_SLICE_TOKENS = 64, chosen by measurement (README "Budget slices"). A KeyLimiter.extend
 * round trip took p50 2-3 ms, p99 5-11 ms in the local runtime on a loaded 2-core machine
 * (`npx vitest run test/workers/slices.test.ts` prints it). Decode here runs about 2 ms a token (the
 * `small` dev model: 2000-3000 tokens in 4-6 s in test/node/e2e-worker.test.ts), about the bound DESIGN
 * §4 gives Mixtral on an H100. Half a slice of lead (32 tokens, about 64 ms) is then 6× the p99 round
 * trip, so a top-up practically never stalls a generation, where 16 (8 tokens, 16 ms) would stall
 * on the dev models. Against that, 64 costs one DO round trip per 64 tokens (16 per 1000) and lets a
 * request overshoot by at most 32 tokens (240 µ€ at mistral-medium's 7.5 µ€ a token), and its first
 * reservation (64 tokens: 115 µ€ on mistral-small, 480 µ€ on mistral-medium) leaves a 1000 µ€ key
 * able to send requests without max_tokens. 128 would halve the round trips but price that key out of
 * mistral-medium.
 */
export const COMPLETION_SLICE_TOKENS = 64;

export interface SliceOptions {
  /** The request's completion limit (max_tokens, or the context left). */
  maxTokens: number;
  slice?: number;
  /** Reserves `tokens` more completion tokens; resolves false when refused. Never rejects. */
  extend: (tokens: number) => Promise<boolean>;
}

/** Completion tokens to reserve at admission. */
export const firstSlice = (maxTokens: number, slice = COMPLETION_SLICE_TOKENS) => Math.min(maxTokens, slice);

export class SlicedReservation {
  /** Completion tokens covered by the reservation so far. */
  reserved: number;
  /** Slices granted after admission (DO round trips that succeeded). */
  topUps = 0;
  private readonly slice: number;
  private pending: Promise<void> | null = null;
  private refused = false;

  constructor(private readonly o: SliceOptions) {
    this.slice = Math.max(1, o.slice ?? COMPLETION_SLICE_TOKENS);
    this.reserved = firstSlice(o.maxTokens, this.slice);
  }

  /**
   * Called with the running count of generated tokens. False when this token is past what the budget
   * allows (the generation must stop and this token is not delivered); may start the next top-up.
   */
  allows(generated: number): boolean {
    if (this.reserved >= this.o.maxTokens) return true;
    if (this.refused) return generated <= this.reserved;
    if (!this.pending && generated >= this.reserved - Math.floor(this.slice / 2)) this.topUp();
    return true;
  }

  /**
   * While a top-up is unanswered and the generation is half a slice past the reservation: a promise to
   * wait on before relaying more (then ask `allows` again). Null when there is nothing to wait for.
   */
  stall(generated: number): Promise<void> | null {
    return this.pending && generated >= this.reserved + Math.floor(this.slice / 2) ? this.pending : null;
  }

  private topUp(): void {
    const want = Math.min(this.slice, this.o.maxTokens - this.reserved);
    this.pending = this.o.extend(want).then((ok) => {
      this.pending = null;
      if (ok) {
        this.reserved += want;
        this.topUps++;
      } else this.refused = true;
    });
  }
}
