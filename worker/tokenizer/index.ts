/**
 * Public API of the edge tokenizer (Mistral v1 SentencePiece BPE, exact). STUB: owned by the tokenizer work.
 */
export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
}

export const BOS_ID = 1;
export const EOS_ID = 2;

/** Ids for `text` with SentencePiece's dummy prefix, no BOS (as golden.jsonl). */
export function encode(_text: string): number[] {
  throw new Error("tokenizer not implemented yet");
}

/** The whole v1 chat prompt, BOS included (as chat_golden.jsonl). Throws ApiError(400) on invalid role order. */
export function applyChatTemplate(_messages: ChatMessage[]): number[] {
  throw new Error("tokenizer not implemented yet");
}

/** Streaming detokenizer: never emits half a UTF-8 character; honours the leading-space rule. */
export interface Detokenizer {
  push(id: number): string;
  flush(): string;
}
export function createDetokenizer(): Detokenizer {
  throw new Error("tokenizer not implemented yet");
}

export function decode(_ids: number[]): string {
  throw new Error("tokenizer not implemented yet");
}
