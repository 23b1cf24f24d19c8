/**
 * Token bytes of Mistral v1's SentencePiece vocabulary, for the constraint's token trie.
 *
 * The pieces come from the npm package `mistral-tokenizer-js`, the same source the worker's generated
 * vocabulary is built from (worker/tokenizer/generate-vocab.ts), so the backend needs no import from the
 * worker. "▁" is a space; <0xNN> byte-fallback tokens are the raw byte; <unk>, <s>, </s> have no bytes.
 */
import mistral from "mistral-tokenizer-js";

const VOCAB_SIZE = 32000;
const BYTE_OFFSET = 3;
const FIRST_NORMAL_ID = 259;

let cached: Uint8Array[] | undefined;

/** Bytes per id; an empty array for the control ids 0..2. */
export function mistralTokenBytes(): ReadonlyArray<Uint8Array> {
  if (cached) return cached;
  const pieces = mistral.vocabById;
  if (pieces.length !== VOCAB_SIZE)
    throw new Error(`mistral vocabulary has ${pieces.length} pieces, expected ${VOCAB_SIZE}`);
  const enc = new TextEncoder();
  cached = pieces.map((p, id) => {
    if (id < BYTE_OFFSET) return new Uint8Array(0);
    if (id < FIRST_NORMAL_ID) return Uint8Array.of(id - BYTE_OFFSET);
    return enc.encode(p.replaceAll("\u2581", " "));
  });
  return cached;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * SentencePiece's ids for text that follows a token boundary (no dummy prefix): jump-forward's encoder.
 * mistral-tokenizer-js matched SentencePiece on every golden document; null for bytes that are not UTF-8.
 */
export function mistralEncode(bytes: Uint8Array): number[] | null {
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    return null;
  }
  return mistral.encode(text, false, false);
}
