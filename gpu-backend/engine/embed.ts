/**
 * Embeddings on the engine's model: one L2-normalised mean-pooled vector per input. Each input is its own
 * job between engine steps (the engine runs one job per step), so generations keep decoding while a large
 * request embeds, and an aborted `signal` stops it before the next input (EmbedStopped with the tokens
 * computed so far).
 */
import type { ModelRunner } from "./model-runner";
import { AdmissionError, EmbedStopped } from "./sequence";

export async function embedInputs(
  runner: ModelRunner,
  exclusive: <T>(fn: () => Promise<T>) => Promise<T>,
  inputs: number[][],
  opts: { signal?: AbortSignal },
): Promise<number[][]> {
  const V = runner.manifest.vocab_size;
  const H = runner.manifest.hidden_size;
  for (const ids of inputs) {
    const bad = ids.find((t) => t >= V);
    if (bad !== undefined)
      throw new AdmissionError(`inputs contains ${bad}, outside the vocabulary (size ${V})`, 400, "invalid_token");
    if (ids.length > runner.manifest.context_length) {
      throw new AdmissionError(
        `input of ${ids.length} tokens exceeds the context window`,
        400,
        "context_length_exceeded",
      );
    }
  }
  const out: number[][] = [];
  let computed = 0;
  for (const ids of inputs) {
    // Checked again inside the job: an abort while queued behind decode steps costs nothing.
    if (opts.signal?.aborted) throw new EmbedStopped("cancelled", computed);
    let hs: Float32Array | null;
    try {
      hs = await exclusive(async () => (opts.signal?.aborted ? null : runner.hidden(ids)));
    } catch (e) {
      console.error(`engine ${runner.manifest.name}: embed failed: ${(e as Error).message}`);
      throw new EmbedStopped("error", computed);
    }
    if (hs === null) throw new EmbedStopped("cancelled", computed);
    computed += ids.length;
    const v = new Float64Array(H);
    for (let s = 0; s < ids.length; s++) for (let j = 0; j < H; j++) v[j]! += hs[s * H + j]!;
    let norm = 0;
    for (let j = 0; j < H; j++) norm += v[j]! * v[j]!;
    norm = Math.sqrt(norm) || 1;
    out.push(Array.from(v, (x) => x / norm));
  }
  return out;
}
