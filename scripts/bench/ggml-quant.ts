/**
 * The ggml tensor encodings the GGUF export writes, ported from ggml/src/ggml-quants.c's reference
 * quantizers (`quantize_row_q4_0_ref`, `quantize_row_q8_0_ref`, `quantize_row_q6_K_ref`), which are
 * what `llama-quantize` runs when it has no importance matrix. Float32 steps are rounded with
 * Math.fround where the C code rounds, so Q4_0 and Q8_0 match it bit for bit; Q6_K's scale search
 * accumulates in float64 and may pick another candidate scale on a rare near-tie.
 * Dequantizers are here for the export's tests.
 */

/** ggml_type ids (ggml.h). */
export const GGML = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8, Q6_K: 14 } as const;
export type GgmlType = (typeof GGML)[keyof typeof GGML];

/** Elements per block and bytes per block of each type. */
const LAYOUT: Record<GgmlType, { block: number; bytes: number }> = {
  [GGML.F32]: { block: 1, bytes: 4 },
  [GGML.F16]: { block: 1, bytes: 2 },
  [GGML.Q4_0]: { block: 32, bytes: 18 },
  [GGML.Q8_0]: { block: 32, bytes: 34 },
  [GGML.Q6_K]: { block: 256, bytes: 210 },
};

export function typeName(t: GgmlType): string {
  return Object.entries(GGML).find(([, v]) => v === t)![0];
}

export function blockSize(t: GgmlType): number {
  return LAYOUT[t].block;
}

/** Bytes of `count` elements of type `t` (each row must be a whole number of blocks). */
export function tensorBytes(t: GgmlType, count: number): number {
  const { block, bytes } = LAYOUT[t];
  if (count % block) throw new Error(`${count} elements are not whole ${typeName(t)} blocks of ${block}`);
  return (count / block) * bytes;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE binary16 bits of a float32, round to nearest even (as ggml's FP32_TO_FP16 and F16C do). */
export function f32ToF16(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = mant >>> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) {
    h++;
    if (h === 0x400) {
      h = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | h;
}

export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** Q4_0: per 32 values one f16 scale d = max/-8 (max = the value of largest magnitude) and 16 bytes of
 * nibbles: value j in the low nibble of byte j, value j+16 in its high nibble, q = value/d + 8. */
export function quantizeQ4_0(x: Float32Array, out = new Uint8Array(tensorBytes(GGML.Q4_0, x.length))): Uint8Array {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let b = 0, o = 0; b < x.length; b += 32, o += 18) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[b + j];
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = Math.fround(max / -8);
    const id = d ? Math.fround(1 / d) : 0;
    view.setUint16(o, f32ToF16(d), true);
    for (let j = 0; j < 16; j++) {
      // (int8_t)(x*id + 8.5f) truncates; x*id lies in [-8, 8], so the sum is positive and truncation is floor.
      const q0 = Math.min(15, Math.floor(Math.fround(Math.fround(x[b + j] * id) + 8.5)));
      const q1 = Math.min(15, Math.floor(Math.fround(Math.fround(x[b + 16 + j] * id) + 8.5)));
      out[o + 2 + j] = q0 | (q1 << 4);
    }
  }
  return out;
}

export function dequantizeQ4_0(q: Uint8Array, n: number): Float32Array {
  const y = new Float32Array(n);
  const view = new DataView(q.buffer, q.byteOffset, q.byteLength);
  for (let b = 0, o = 0; b < n; b += 32, o += 18) {
    const d = f16ToF32(view.getUint16(o, true));
    for (let j = 0; j < 16; j++) {
      y[b + j] = ((q[o + 2 + j] & 0xf) - 8) * d;
      y[b + 16 + j] = ((q[o + 2 + j] >> 4) - 8) * d;
    }
  }
  return y;
}

/** Round to nearest, ties to even, as ggml's nearest_int (the 1.5 * 2^23 trick in float32). */
function nearestInt(v: number): number {
  return Math.fround(Math.fround(v) + 12582912) - 12582912;
}

/** Q8_0: per 32 values one f16 scale d = amax/127 and 32 int8 values round(x/d). */
export function quantizeQ8_0(x: Float32Array, out = new Uint8Array(tensorBytes(GGML.Q8_0, x.length))): Uint8Array {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let b = 0, o = 0; b < x.length; b += 32, o += 34) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b + j]));
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    view.setUint16(o, f32ToF16(d), true);
    // roundf: half away from zero.
    for (let j = 0; j < 32; j++) {
      const v = Math.fround(x[b + j] * id);
      view.setInt8(o + 2 + j, Math.sign(v) * Math.round(Math.abs(v)));
    }
  }
  return out;
}

export function dequantizeQ8_0(q: Uint8Array, n: number): Float32Array {
  const y = new Float32Array(n);
  const view = new DataView(q.buffer, q.byteOffset, q.byteLength);
  for (let b = 0, o = 0; b < n; b += 32, o += 34) {
    const d = f16ToF32(view.getUint16(o, true));
    for (let j = 0; j < 32; j++) y[b + j] = view.getInt8(o + 2 + j) * d;
  }
  return y;
}

const GROUP_MAX_EPS = 1e-15;

/** make_qx_quants(16, 32, x, L, rmse_type 1, no weights): a scale for 16 values with levels in
 * [-32, 31], the best of 19 candidates by weighted (x²) squared error; L receives level + 32. */
function makeQxQuants(x: Float32Array, off: number, L: Int8Array, lOff: number): number {
  const n = 16;
  const nmax = 32;
  let max = 0;
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[off + i]);
    if (ax > amax) {
      amax = ax;
      max = x[off + i];
    }
  }
  if (amax < GROUP_MAX_EPS) {
    L.fill(0, lOff, lOff + n);
    return 0;
  }
  const levels = (iscale: number, store: boolean): [number, number] => {
    let sumlx = 0;
    let suml2 = 0;
    for (let i = 0; i < n; i++) {
      const v = x[off + i];
      const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(iscale * v)));
      if (store) L[lOff + i] = l + nmax;
      const w = v * v;
      sumlx += w * v * l;
      suml2 += w * l * l;
    }
    return [sumlx, suml2];
  };
  let [sumlx, suml2] = levels(Math.fround(-nmax / max), true);
  let scale = suml2 ? sumlx / suml2 : 0;
  let best = scale * sumlx;
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    const iscale = Math.fround(-(nmax + 0.1 * is) / max);
    [sumlx, suml2] = levels(iscale, false);
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      levels(iscale, true);
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return Math.fround(scale);
}

/** Q6_K: per 256 values 16 sub-blocks of 16, each with an int8 scale of one f16 super-scale, and 6-bit
 * levels split into low nibbles (ql, 128 bytes) and high 2 bits (qh, 64 bytes). */
export function quantizeQ6_K(x: Float32Array, out = new Uint8Array(tensorBytes(GGML.Q6_K, x.length))): Uint8Array {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const L = new Int8Array(256);
  const scales = new Float32Array(16);
  for (let b = 0, o = 0; b < x.length; b += 256, o += 210) {
    let maxScale = 0;
    let maxAbsScale = 0;
    for (let ib = 0; ib < 16; ib++) {
      const s = makeQxQuants(x, b + 16 * ib, L, 16 * ib);
      scales[ib] = s;
      if (Math.abs(s) > maxAbsScale) {
        maxAbsScale = Math.abs(s);
        maxScale = s;
      }
    }
    out.fill(0, o, o + 210);
    if (maxAbsScale < GROUP_MAX_EPS) continue;
    const iscale = Math.fround(-128 / maxScale);
    const dBits = f32ToF16(Math.fround(1 / iscale));
    view.setUint16(o + 208, dBits, true);
    const dh = f16ToF32(dBits);
    for (let ib = 0; ib < 16; ib++) view.setInt8(o + 192 + ib, Math.min(127, nearestInt(iscale * scales[ib])));
    for (let j = 0; j < 16; j++) {
      const d = Math.fround(dh * view.getInt8(o + 192 + j));
      if (!d) continue;
      for (let ii = 0; ii < 16; ii++) {
        const l = nearestInt(x[b + 16 * j + ii] / d);
        L[16 * j + ii] = Math.max(-32, Math.min(31, l)) + 32;
      }
    }
    for (let j = 0; j < 256; j += 128) {
      const ql = o + j / 2;
      const qh = o + 128 + j / 4;
      for (let l = 0; l < 32; l++) {
        const q1 = L[j + l];
        const q2 = L[j + l + 32];
        const q3 = L[j + l + 64];
        const q4 = L[j + l + 96];
        out[ql + l] = (q1 & 0xf) | ((q3 & 0xf) << 4);
        out[ql + l + 32] = (q2 & 0xf) | ((q4 & 0xf) << 4);
        out[qh + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
      }
    }
  }
  return out;
}

export function dequantizeQ6_K(q: Uint8Array, n: number): Float32Array {
  const y = new Float32Array(n);
  const view = new DataView(q.buffer, q.byteOffset, q.byteLength);
  for (let b = 0, o = 0; b < n; b += 256, o += 210) {
    const d = f16ToF32(view.getUint16(o + 208, true));
    for (let half = 0; half < 2; half++) {
      const ql = o + 64 * half;
      const qh = o + 128 + 32 * half;
      const sc = o + 192 + 8 * half;
      const yo = b + 128 * half;
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const h = q[qh + l];
        y[yo + l] = d * view.getInt8(sc + is) * (((q[ql + l] & 0xf) | ((h & 3) << 4)) - 32);
        y[yo + l + 32] = d * view.getInt8(sc + is + 2) * (((q[ql + l + 32] & 0xf) | (((h >> 2) & 3) << 4)) - 32);
        y[yo + l + 64] = d * view.getInt8(sc + is + 4) * (((q[ql + l] >> 4) | (((h >> 4) & 3) << 4)) - 32);
        y[yo + l + 96] = d * view.getInt8(sc + is + 6) * (((q[ql + l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32);
      }
    }
  }
  return y;
}

/** Encodes float32 values as `type`. */
export function encode(type: GgmlType, x: Float32Array): Uint8Array {
  switch (type) {
    case GGML.F32:
      return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    case GGML.F16: {
      const h = new Uint16Array(x.length);
      for (let i = 0; i < x.length; i++) h[i] = f32ToF16(x[i]);
      return new Uint8Array(h.buffer);
    }
    case GGML.Q4_0:
      return quantizeQ4_0(x);
    case GGML.Q8_0:
      return quantizeQ8_0(x);
    case GGML.Q6_K:
      return quantizeQ6_K(x);
  }
}
