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
  const nb = (K / bs) | 0;
  const half = bs >> 1;
  for (let b = 0; b < nb; b++) {
    const start = srcOff + b * bs;
    const end = start + bs;
    let amax = 0;
    let wmax = 0;
    for (let i = start; i < end; i++) {
      const w = src[i];
      const a = Math.abs(w);
      if (a > amax) {
        amax = a;
        wmax = w;
      }
    }
    let qo = qOff + b * half;
    if (!(amax > 0)) {
      // All-zero block (or NaN): scale 0 and q = 8 dequantize to exactly 0, never NaN.
      scales[sOff + b] = 0;
      for (let j = 0; j < half; j++) q[qo + j] = 0x88;
      continue;
    }
    // wmax is a float32 and dividing by a power of two is exact, so scale is exact in float32.
    const scale = wmax / -8;
    scales[sOff + b] = scale;
    const inv = 1 / scale;
    // x = w/scale lies in [-8, 8]; (x + 8.5) | 0 = round-half-up(x) + 8, clamped to 15 (x = +8 -> 7).
    for (let i = start; i < end; i += 2) {
      let lo = (src[i] * inv + 8.5) | 0;
      let hi = (src[i + 1] * inv + 8.5) | 0;
      lo = lo > 15 ? 15 : lo < 0 ? 0 : lo;
      hi = hi > 15 ? 15 : hi < 0 ? 0 : hi;
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
