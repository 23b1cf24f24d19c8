/**
 * What the constraint tests share: the manifest of a 32000-token Mistral v1 vocabulary (EOS 2), a token's id by
 * its text, and a random walk over a constraint's masks (a stand-in for a random-weight model).
 */
import { expect } from "vitest";
import type { ModelManifest } from "../../../contract/model-manifest";
import type { VocabIndex } from "../../../gpu-backend/engine/constraint/vocab-index";
import type { Constraint } from "../../../gpu-backend/engine/constraint/token-mask";
import { sampleToken } from "../../../gpu-backend/engine/sampler";

export const TINY_MANIFEST = {
  name: "tiny",
  tokenizer: { kind: "mistral-v1-sentencepiece", vocab_size: 32000 },
  vocab_size: 32000,
  eos_token_id: 2,
} as ModelManifest;

/** The id of the token whose bytes are exactly `text` ("▁" read as a space). */
export function tokenIdOf(vocab: VocabIndex, text: string): number {
  const want = Buffer.from(text.replaceAll("▁", " "));
  for (let id = 3; id < vocab.size; id++) if (Buffer.from(vocab.bytes(id) ?? []).equals(want)) return id;
  throw new Error(`no token ${JSON.stringify(text)}`);
}

/**
 * Up to `steps` tokens drawn at temperature 1 from structure-heavy random logits (a model that likes short
 * tokens reaches the end of documents), each row masked by `c` first; stops at EOS or a complete document.
 * Returns the tokens' bytes.
 */
export function randomWalk(c: Constraint, vocab: VocabIndex, rng: () => number, steps: number): Uint8Array[] {
  const lengths = lengthsOf(vocab);
  const row = new Float32Array(vocab.size);
  const out: Uint8Array[] = [];
  for (let i = 0; i < steps && !c.complete; i++) {
    for (let j = 0; j < row.length; j++) row[j] = rng() * 4 - lengths[j]!;
    expect(c.apply(row)).toBe(true);
    const tok = sampleToken(row, { temperature: 1, top_p: 1, top_k: 0 }, rng);
    if (tok === 2) break;
    c.accept(tok);
    out.push(vocab.bytes(tok) ?? new Uint8Array(0));
  }
  return out;
}

const lengthCache = new WeakMap<VocabIndex, Uint8Array>();
const lengthsOf = (vocab: VocabIndex): Uint8Array => {
  let l = lengthCache.get(vocab);
  if (!l) {
    l = Uint8Array.from({ length: vocab.size }, (_, j) => vocab.bytes(j)?.length ?? 0);
    lengthCache.set(vocab, l);
  }
  return l;
};
