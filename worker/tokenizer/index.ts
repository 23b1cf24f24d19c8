/**
 * Public API of the edge tokenizer: Mistral v1 SentencePiece BPE (Mixtral), exact and linear-time.
 * Vocabulary comes from vocab.generated.ts (bundled); nothing is read at run time.
 */
export { BOS_ID, EOS_ID, UNK_ID, VOCAB_SIZE } from "./vocab-layout.js";
export {
  applyChatTemplate,
  type ChatMessage,
  type TemplateOptions,
  type TemplateToolCall,
  TOOL_CALLS_MARKER,
} from "./chat.js";
export { pyJson } from "./template-json.js";
export { TokenizerError, type TokenizerErrorCode } from "./errors.js";
export { createDetokenizer, decode, pieceBytes, type Detokenizer } from "./detokenizer.js";
export { createStopMatcher, type StopMatcher, type StopResult } from "./stop-matcher.js";
import { encodeText } from "./encode.js";

/** Ids for `text` with SentencePiece's dummy prefix, no BOS (as golden.jsonl). Typed "<s>" etc. is plain text. */
export function encode(text: string): number[] {
  return encodeText(text);
}
