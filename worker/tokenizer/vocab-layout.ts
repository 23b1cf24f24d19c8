/** Fixed id layout of Mistral v1's SentencePiece model (shared by the runtime and the generator). */
export const VOCAB_SIZE = 32000;
export const UNK_ID = 0;
export const BOS_ID = 1;
export const EOS_ID = 2;
/** <0x00> is id 3, so byte b is id b + 3. */
export const BYTE_OFFSET = 3;
export const FIRST_NORMAL_ID = 259;

/** Piece string of the ids below FIRST_NORMAL_ID. */
export function specialPiece(id: number): string {
  if (id === UNK_ID) return "<unk>";
  if (id === BOS_ID) return "<s>";
  if (id === EOS_ID) return "</s>";
  return `<0x${(id - BYTE_OFFSET).toString(16).toUpperCase().padStart(2, "0")}>`;
}
