// Int4 quantization kernels, plain JavaScript so worker threads can load them without a TypeScript
// loader. Types: quant-kernel.d.mts. Convention (DESIGN.md §3): per block, scale = (the weight of
// largest magnitude) / -8, q = clamp(round(w/scale), -8, 7) + 8, low nibble first, no zero points.

/** Quantizes one row of K float32 weights into K/2 packed bytes and K/bs scales. */
export function quantizeRow(src, srcOff, K, bs, q, qOff, scales, sOff) {
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
    // x = w/scale lies in [-8, 8]; (x + 8.5) | 0 = round-half-up(x) + 8, clamped to [0, 15] (x = +8 -> 7).
    for (let i = start; i < end; i += 2) {
      let lo = (src[i] * inv + 8.5) | 0;
      let hi = (src[i + 1] * inv + 8.5) | 0;
      lo = Math.min(15, Math.max(lo, 0));
      hi = Math.min(15, Math.max(hi, 0));
      q[qo++] = lo | (hi << 4);
    }
  }
}

function halfToFloat(h) {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Converts little-endian BF16/F16/F32 bytes to float32 (into `dst`, which must be long enough). */
export function toF32Into(bytes, dtype, dst) {
  const eb = dtype === "F32" ? 4 : 2;
  const n = bytes.byteLength / eb;
  if (dtype === "F32") {
    if (bytes.byteOffset % 4 === 0) dst.set(new Float32Array(bytes.buffer, bytes.byteOffset, n));
    else new Uint8Array(dst.buffer, dst.byteOffset, n * 4).set(bytes);
    return dst.subarray(0, n);
  }
  const src =
    bytes.byteOffset % 2 === 0
      ? new Uint16Array(bytes.buffer, bytes.byteOffset, n)
      : new Uint16Array(bytes.slice().buffer);
  if (dtype === "BF16") {
    const u32 = new Uint32Array(dst.buffer, dst.byteOffset, n);
    for (let i = 0; i < n; i++) u32[i] = src[i] << 16;
  } else {
    for (let i = 0; i < n; i++) dst[i] = halfToFloat(src[i]);
  }
  return dst.subarray(0, n);
}

/**
 * Quantizes `cnt` rows from each of n sources (raw bytes, one buffer per source) into interleaved
 * output rows: source s row i -> output row i*n + s. Returns packed weights and scales.
 * `scratch` is a reusable float32 buffer (returned, possibly grown).
 */
export function quantizeChunk(raws, dtypes, cnt, K, bs, scratch) {
  const n = raws.length;
  const nb = K / bs;
  const q = new Uint8Array((cnt * n * K) / 2);
  const scales = new Float32Array(cnt * n * nb);
  const f32 = scratch && scratch.length >= cnt * K ? scratch : new Float32Array(cnt * K);
  for (let s = 0; s < n; s++) {
    const src = toF32Into(raws[s], dtypes[s], f32);
    for (let i = 0; i < cnt; i++) {
      const outRow = i * n + s;
      quantizeRow(src, i * K, K, bs, q, (outRow * K) / 2, scales, outRow * nb);
    }
  }
  return { q, scales, scratch: f32 };
}
