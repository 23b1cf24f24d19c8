/**
 * What happens to one sequence's logits row: it is the logprob row of a forced token, or the row its next
 * token is sampled from. After a sampled token, the grammar may force a run of tokens (jump-forward,
 * constraint/jump-forward.ts): they are appended without sampling and fed to the model as one chunk. They
 * are completion tokens like any other (billed, counted against max_tokens, cut where max_tokens or the
 * context ends). Without logprobs they are committed (streamed) at once; with logprobs each waits for the
 * row the model computes before it, in that same chunk, and is committed with its logprob.
 */
import type { FinishReason, TokenLogprob } from "../../contract/wire";
import { Constraint } from "./constraint";
import { argmax, sampleAmong, sampleToken, tokenLogprob } from "./sampler";
import type { Sequence } from "./sequence";
import type { EngineMetrics } from "./stats";

export class TokenFlow {
  /** Scratch for a constrained row's allowed ids (up to half the vocabulary; past that the row is masked). */
  private readonly allowed = new Int32Array(16384);

  constructor(
    private readonly eos: number,
    private readonly jumpForward: boolean,
    /** EngineOptions.keepGreedyTokens (benchmarks). */
    private readonly keepGreedyTokens: boolean,
    private readonly metrics: () => EngineMetrics,
    private readonly finish: (seq: Sequence, reason: FinishReason, error?: string) => void,
  ) {}

  /** A row the model computed after the sequence's latest fed token (the caller has taken it off `feed`). */
  row(seq: Sequence, row: Float32Array): void {
    const a = seq.awaited[seq.awaitedAt];
    if (a) {
      seq.constraint!.apply(row, a.mask);
      a.logprob = tokenLogprob(row, a.id, seq.params.top_logprobs ?? 0);
      if (++seq.awaitedAt === seq.awaited.length) this.commitAwaited(seq);
      return;
    }
    // A forced token's row when no logprobs are asked for: the model only had to see the token.
    if (seq.feed.length > 0) return;
    // The mask is not ready (the engine computes it beside later steps): this sequence falls behind alone.
    if (seq.constraint && !seq.constraint.ready) {
      this.metrics().maskWaits++;
      seq.held = row.slice();
      return;
    }
    this.sample(seq, row);
  }

  /** Samples the next token and decides whether the sequence goes on (and what the grammar forces next). */
  sample(seq: Sequence, row: Float32Array): void {
    const p = seq.params;
    let c = seq.constraint;
    if (!c) seq.trigger?.refuseOverruns(row);
    // Constrained: draw among the allowed ids only (no pass over the whole row), unless logprobs want the
    // masked row or the mask allows too many ids for that to pay.
    const n = c && !p.logprobs && !this.keepGreedyTokens ? c.allowedIds(this.allowed, row.length) : -1;
    let drawn = n > 0 ? sampleAmong(row, this.allowed, n, p, seq.rng) : -1;
    if (n === 0 || (drawn < 0 && c && !c.apply(row))) {
      this.finish(seq, "error", "response_format allows no token here");
      return;
    }
    if (drawn < 0) drawn = sampleToken(row, p, seq.rng);
    const tok = this.keepGreedyTokens ? argmax(row) : drawn;
    if (tok === this.eos || p.stop_token_ids.includes(tok)) {
      this.finish(seq, "stop");
      return;
    }
    this.commit(seq, [tok], p.logprobs ? [tokenLogprob(row, tok, p.top_logprobs ?? 0)] : undefined);
    seq.feed = [tok];
    if (c) c.accept(tok);
    else if (seq.trigger && seq.format) {
      const rest = seq.trigger.observe(seq.format.vocab.bytes(tok) ?? new Uint8Array(0));
      if (rest) {
        c = seq.constraint = new Constraint(seq.format, p.stop_token_ids);
        if (!c.acceptBytes(rest)) {
          this.finish(seq, "error", "the text after format_trigger does not match response_format");
          return;
        }
      }
    }
    if (this.ended(seq)) return;
    if (c && this.jumpForward) this.jump(seq, c);
  }

  private jump(seq: Sequence, c: Constraint): void {
    let ids = c.forced();
    if (ids.length > seq.room) ids = ids.slice(0, seq.room);
    if (ids.length === 0) return;
    this.metrics().forcedTokens += ids.length;
    if (!seq.params.logprobs) {
      for (const id of ids) c.accept(id);
      this.commit(seq, [...ids]);
      seq.feed.push(...ids);
      this.ended(seq);
      return;
    }
    const ends = ids.length === seq.room;
    for (const id of ids) {
      seq.awaited.push({ id, mask: c.maskNow() });
      c.accept(id);
    }
    seq.feed.push(...ids);
    // The output ends with this run: its last token needs a logprob row but no row after it.
    if (ends || c.complete) {
      seq.feed.pop();
      seq.endsAfterRun = true;
    }
  }

  private commitAwaited(seq: Sequence): void {
    const done = seq.awaited;
    seq.awaited = [];
    seq.awaitedAt = 0;
    this.commit(
      seq,
      done.map((a) => a.id),
      done.map((a) => a.logprob!),
    );
    if (this.ended(seq) || !seq.endsAfterRun) return;
    throw new Error("a forced run that ends the output did not end it");
  }

  private commit(seq: Sequence, ids: number[], logprobs?: TokenLogprob[]): void {
    seq.generated.push(...ids);
    seq.outIds.push(...ids);
    if (logprobs) seq.outLogprobs.push(...logprobs);
  }

  /** Finishes the sequence when its document is complete or it has no room left; true when it did. */
  private ended(seq: Sequence): boolean {
    if (seq.constraint?.complete) this.finish(seq, "stop");
    else if (seq.generated.length >= seq.params.max_tokens) this.finish(seq, "length");
    else if (seq.promptLen + seq.generated.length >= seq.reserve) this.finish(seq, "model_length");
    else return false;
    return true;
  }
}
