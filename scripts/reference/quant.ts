/**
 * The project's int4 convention, written independently of the builder so the correctness test
 * checks the builder rather than trusting it: symmetric, per 32-block along the input (K) dim,
 * scale = w_at_absmax / -8, q = clamp(round(w / scale), -8, 7) + 8, dequant w' = (q - 8) · scale.
 * Scales and dequantized values are float32, as ORT computes them.
 */

/** Returns the dequantized copy of a [rows, cols] Linear weight (blocks run along each row). */
export function quantDequantInt4(w: Float32Array, rows: number, cols: number, blockSize = 32): Float32Array {
  if (w.length !== rows * cols) throw new Error(`quantDequantInt4: ${w.length} values, expected ${rows}x${cols}`);
  if (cols % blockSize !== 0) throw new Error(`quantDequantInt4: input dim ${cols} is not a multiple of ${blockSize}`);
  const out = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < cols; b += blockSize) {
      const o = r * cols + b;
      let amax = 0;
      let wmax = 0;
      for (let i = 0; i < blockSize; i++) {
        const a = Math.abs(w[o + i]);
        if (a > amax) {
          amax = a;
          wmax = w[o + i];
        }
      }
      const scale = Math.fround(wmax / -8);
      if (scale === 0) continue; // all-zero block stays zero
      for (let i = 0; i < blockSize; i++) {
        const q = Math.min(7, Math.max(-8, Math.round(w[o + i] / scale)));
        out[o + i] = Math.fround(q * scale);
      }
    }
  }
  return out;
}

/**
 * Which checkpoint tensors the builder stores as int4: attention projections, expert/dense MLP
 * projections and lm_head. Embeddings, norms and the router gate stay float.
 */
export function isInt4Weight(name: string): boolean {
  return (
    /\.self_attn\.[qkvo]_proj\.weight$/.test(name) ||
    /\.block_sparse_moe\.experts\.\d+\.w[123]\.weight$/.test(name) ||
    /\.mlp\.(gate|up|down)_proj\.weight$/.test(name) ||
    name === "lm_head.weight"
  );
}

export type WeightTransform = (name: string, w: Float32Array, shape: readonly number[]) => Float32Array;

/** weightTransform that replaces every int4-stored weight by its dequantized int4 copy. */
export function int4WeightTransform(blockSize = 32): WeightTransform {
  return (name, w, shape) =>
    isInt4Weight(name) && shape.length === 2 ? quantDequantInt4(w, shape[0], shape[1], blockSize) : w;
}
