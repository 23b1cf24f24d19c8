/**
 * Ids -> text, incrementally, for streaming.
 *  - "▁" is a space; control ids (<unk>, <s>, </s>) and out-of-range ids produce nothing.
 *  - Byte pieces <0xXX> go through a streaming UTF-8 decoder: a character split across byte tokens comes
 *    out whole once its last byte arrives; U+FFFD only for genuinely invalid or truncated sequences.
 *  - Leading-space rule (SentencePiece DecodeIds and Hugging Face's Metaspace decoder, prepend_scheme
 *    "first"): the dummy prefix makes the first word of a text start with "▁", so one leading space is
 *    dropped from the first non-control piece, if it is a normal piece starting with "▁" (once: " x" encodes
 *    as "▁" "▁x" and decodes back to " x").
 *    A completion is decoded as its own sequence, so the model's "▁Paris" streams as "Paris", as the
 *    Mistral API returns it. Later spaces, and a space spelled as byte <0x20>, are kept.
 */
import { BYTE_OFFSET, FIRST_NORMAL_ID, VOCAB_SIZE } from "./vocab-layout.js";
import { getVocab } from "./vocab.js";

export interface Detokenizer {
  /** Text completed by this id (possibly ""). */
  push(id: number): string;
  /** Whatever is still held (a truncated UTF-8 sequence becomes U+FFFD). */
  flush(): string;
}

let pieceText: string[] | undefined;

/** Decoded text of each normal piece ("▁" -> " "); "" for other ids. */
function texts(): string[] {
  if (pieceText) return pieceText;
  const { pieces } = getVocab();
  pieceText = pieces.map((p, id) => (id >= FIRST_NORMAL_ID ? p.replaceAll("\u2581", " ") : ""));
  return pieceText;
}

const BYTES = Array.from({ length: 256 }, (_, b) => Uint8Array.of(b));

export function createDetokenizer(): Detokenizer {
  const table = texts();
  // ignoreBOM: a model may legitimately emit U+FEFF as bytes; keep it.
  const utf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
  let pendingBytes = false;
  let started = false; // a non-control id was seen: no more leading-space stripping

  const flushBytes = (): string => {
    if (!pendingBytes) return "";
    pendingBytes = false;
    return utf8.decode();
  };

  return {
    push(id: number): string {
      if (!Number.isInteger(id) || id < 0 || id >= VOCAB_SIZE) return "";
      if (id >= BYTE_OFFSET && id < FIRST_NORMAL_ID) {
        pendingBytes = true;
        started = true;
        return utf8.decode(BYTES[id - BYTE_OFFSET], { stream: true });
      }
      if (id < BYTE_OFFSET) return ""; // control ids
      const text = table[id];
      const strip = !started && text.charCodeAt(0) === 0x20;
      started = true;
      return flushBytes() + (strip ? text.slice(1) : text);
    },
    flush(): string {
      return flushBytes();
    },
  };
}

const utf8 = new TextEncoder();

/** A token's own bytes: "▁" -> space, <0xXX> -> that byte, control ids -> none (logprobs' alternatives). */
export function pieceBytes(id: number): Uint8Array {
  if (!Number.isInteger(id) || id < BYTE_OFFSET || id >= VOCAB_SIZE) return new Uint8Array(0);
  if (id < FIRST_NORMAL_ID) return BYTES[id - BYTE_OFFSET];
  return utf8.encode(texts()[id]);
}

export function decode(ids: readonly number[]): string {
  const d = createDetokenizer();
  let out = "";
  for (const id of ids) out += d.push(id);
  return out + d.flush();
}
