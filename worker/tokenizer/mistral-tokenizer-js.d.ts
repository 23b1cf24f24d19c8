// Types for the untyped npm package; only what the vocab generator and the reference tests use.
declare module "mistral-tokenizer-js" {
  interface MistralTokenizerJs {
    /** Piece strings by id (32000). */
    vocabById: string[];
    encode(text: string, addBos?: boolean, addPrecedingSpace?: boolean): number[];
  }
  const tokenizer: MistralTokenizerJs;
  export default tokenizer;
}
