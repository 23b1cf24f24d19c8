/**
 * Symmetric block-wise int4 quantizer, the convention ORT's fast MLAS MoE path reproduces exactly
 * (DESIGN.md §3): per block, scale = (the weight of largest magnitude) / -8, q = clamp(round(w/scale), -8, 7) + 8,
 * stored as uint8 nibbles, low nibble first, no zero points (MatMulNBits' default zero point is 8).
 * Tight typed-array loops, no per-element allocation.
 */

export { quantizeRow, quantizeChunk } from "./quant-kernel.mjs";

/** Dequantizes one row (for tests and reference code): w = (q - 8) * scale. */
export function dequantizeRow(
  q: Uint8Array,
  qOff: number,
  scales: Float32Array,
  sOff: number,
  K: number,
  bs: number,
): Float32Array {
  const out = new Float32Array(K);
  for (let i = 0; i < K; i += 2) {
    const byte = q[qOff + i / 2];
    const s = scales[sOff + Math.floor(i / bs)];
    out[i] = ((byte & 15) - 8) * s;
    out[i + 1] = ((byte >> 4) - 8) * s;
  }
  return out;
}
