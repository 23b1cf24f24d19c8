/**
 * Per-token logprobs in OpenAI's shape (choices[].logprobs.content[]), lined up with the content.
 *
 * The backend sends a logprob and alternatives per token id (contract/wire.ts TokenLogprob: log-softmax at
 * temperature 1 after any response_format mask). Each entry's `token` is the text that token added to the
 * content through the same detokenizer, so the tokens joined equal the content exactly:
 *  - the first token's dummy-prefix space is dropped like in the content;
 *  - a character split across byte-fallback tokens is credited to the token that completes it (the
 *    others read "" with no bytes);
 *  - stop strings: entries are released only as the content grows past them, and at the end the token
 *    that straddles the cut is trimmed to the content and later ones are dropped.
 * `bytes` is the UTF-8 of `token`. Alternatives carry the token's own text and bytes.
 */
import type { LogprobContent } from "../../contract/api-chat";
import type { TokenLogprob } from "../../contract/wire";
import { pieceBytes } from "../tokenizer";

const enc = new TextEncoder();
const dec = new TextDecoder();

export class LogprobTracker {
  private pending: Array<{ text: string; lp: TokenLogprob }> = [];
  /** Content length (UTF-16 units) covered by the entries released so far. */
  private covered = 0;

  /** A token's entry, with the text it added (detokenizer output before stop matching). */
  push(text: string, lp: TokenLogprob | undefined): void {
    this.pending.push({ text, lp: lp ?? { logprob: 0, top: [] } });
  }

  /** Text the detokenizer released at the end (a truncated UTF-8 tail) belongs to the last token. */
  addTail(text: string): void {
    const last = this.pending[this.pending.length - 1];
    if (last) last.text += text;
  }

  /**
   * Entries whose text lies within the first `contentLength` units of the content. With `final`, the one
   * straddling that length is trimmed to it and the rest are dropped (they were cut by a stop string).
   */
  release(contentLength: number, final = false): LogprobContent[] {
    const out: LogprobContent[] = [];
    while (this.pending.length > 0) {
      const e = this.pending[0]!;
      const end = this.covered + e.text.length;
      if (end <= contentLength) {
        out.push(render(e.text, e.lp));
        this.covered = end;
        this.pending.shift();
        continue;
      }
      if (!final) break;
      if (this.covered < contentLength) out.push(render(e.text.slice(0, contentLength - this.covered), e.lp));
      this.covered = contentLength;
      this.pending = [];
    }
    return out;
  }
}

function render(text: string, lp: TokenLogprob): LogprobContent {
  return {
    token: text,
    logprob: lp.logprob,
    bytes: [...enc.encode(text)],
    top_logprobs: lp.top.map((t) => {
      const b = pieceBytes(t.id);
      return { token: dec.decode(b), logprob: t.logprob, bytes: [...b] };
    }),
  };
}
