/**
 * Symmetric block-wise int4 quantizer, the convention ORT's fast MLAS MoE path reproduces exactly
 * (DESIGN.md §3): per block, scale = (the weight of largest magnitude) / -8, q = clamp(round(w/scale), -8, 7) + 8,
 * stored as uint8 nibbles, low nibble first, no zero points (MatMulNBits' default zero point is 8).
 * Tight typed-array loops, no per-element allocation.
 */

/**
 * Quantizes one row of K weights (src[srcOff .. srcOff+K)) into q[qOff .. qOff+K/2) and
 * scales[sOff .. sOff+K/bs). K must be a multiple of bs and bs even.
 */
export function quantizeRow(
  src: Float32Array,
  srcOff: number,
  K: number,
  bs: number,
  q: Uint8Array,
  qOff: number,
  scales: Float32Array,
  sOff: number,
): void {
  const nb = K / bs;
  for (let b = 0; b < nb; b++) {
    const start = srcOff + b * bs;
    const end = start + bs;
    let amax = 0;
    let wmax = 0;
    for (let i = start; i < end; i++) {
      const w = src[i];
      const a = w < 0 ? -w : w;
      if (a > amax) {
        amax = a;
        wmax = w;
      }
    }
    let qo = qOff + (b * bs) / 2;
    if (amax === 0 || amax !== amax) {
      // All-zero block (or NaN): scale 0 and q = 8 dequantizes to exactly 0, no NaN.
      scales[sOff + b] = 0;
      q.fill(0x88, qo, qo + bs / 2);
      continue;
    }
    // wmax is a float32 and dividing by a power of two is exact: scale is exactly representable.
    const scale = wmax / -8;
    scales[sOff + b] = scale;
    const inv = 1 / scale;
    for (let i = start; i < end; i += 2) {
      let lo = Math.round(src[i] * inv);
      let hi = Math.round(src[i + 1] * inv);
      lo = lo < -8 ? 0 : lo > 7 ? 15 : lo + 8;
      hi = hi < -8 ? 0 : hi > 7 ? 15 : hi + 8;
      q[qo++] = lo | (hi << 4);
    }
  }
}

/** Dequantizes one row (for tests and reference code): w = (q - 8) * scale. */
export function dequantizeRow(q: Uint8Array, qOff: number, scales: Float32Array, sOff: number, K: number, bs: number): Float32Array {
  const out = new Float32Array(K);
  for (let i = 0; i < K; i += 2) {
    const byte = q[qOff + i / 2];
    const s = scales[sOff + Math.floor(i / bs)];
    out[i] = ((byte & 15) - 8) * s;
    out[i + 1] = ((byte >> 4) - 8) * s;
  }
  return out;
}
