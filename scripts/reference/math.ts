/**
 * Plain fp32 building blocks of the reference forward pass. Row-major Float32Array everywhere;
 * dot products accumulate in float64 so the reference is at least as exact as the graph under test.
 */

/** y[S, out] = x[S, in] · Wᵀ, with W in Hugging Face Linear layout [out, in]. */
export function linear(x: Float32Array, rows: number, w: Float32Array, outDim: number, inDim: number): Float32Array {
  if (x.length !== rows * inDim) throw new Error(`linear: x has ${x.length} values, expected ${rows}x${inDim}`);
  if (w.length !== outDim * inDim) throw new Error(`linear: w has ${w.length} values, expected ${outDim}x${inDim}`);
  const y = new Float32Array(rows * outDim);
  for (let s = 0; s < rows; s++) {
    const xo = s * inDim;
    const yo = s * outDim;
    for (let o = 0; o < outDim; o++) {
      const wo = o * inDim;
      let acc = 0;
      for (let i = 0; i < inDim; i++) acc += x[xo + i] * w[wo + i];
      y[yo + o] = acc;
    }
  }
  return y;
}

/** RMSNorm over the last dim: x · rsqrt(mean(x²) + eps) · w (Mistral/Mixtral, fp32). */
export function rmsNorm(x: Float32Array, rows: number, dim: number, w: Float32Array, eps: number): Float32Array {
  const y = new Float32Array(rows * dim);
  for (let s = 0; s < rows; s++) {
    const o = s * dim;
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[o + i] * x[o + i];
    const r = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) y[o + i] = x[o + i] * r * w[i];
  }
  return y;
}

export function silu(v: number): number {
  return v / (1 + Math.exp(-v));
}

/** Inverse frequencies of RoPE: theta^(-2i/d), i < d/2 (as Hugging Face's default rope init). */
export function ropeInvFreq(headDim: number, theta: number): Float64Array {
  const half = headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / theta ** ((2 * i) / headDim);
  return inv;
}

/**
 * Rotates one head vector in place at `position` with Hugging Face's rotate_half convention
 * (non-interleaved: element i pairs with element i + d/2).
 */
export function applyRope(
  v: Float32Array,
  offset: number,
  headDim: number,
  position: number,
  invFreq: Float64Array,
): void {
  const half = headDim / 2;
  for (let i = 0; i < half; i++) {
    const a = position * invFreq[i];
    const c = Math.cos(a);
    const s = Math.sin(a);
    const x1 = v[offset + i];
    const x2 = v[offset + half + i];
    v[offset + i] = x1 * c - x2 * s;
    v[offset + half + i] = x2 * c + x1 * s;
  }
}

/**
 * Whether query position i may attend to key position j. Hugging Face (masking_utils
 * sliding_window_overlay + causal): visible iff i - window < j <= i, i.e. exactly `window` keys
 * including the query itself. ORT GroupQueryAttention's local_window_size L keeps L + 1 keys
 * (flash-attention convention), so a graph matching HF sets local_window_size = sliding_window - 1.
 */
export function attends(i: number, j: number, window: number | null): boolean {
  if (j > i) return false;
  return window === null || j > i - window;
}

/** Softmax in place over v[off .. off+n). */
export function softmaxInPlace(v: Float32Array | Float64Array, off: number, n: number): void {
  let m = -Infinity;
  for (let i = 0; i < n; i++) m = Math.max(m, v[off + i]);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.exp(v[off + i] - m);
    v[off + i] = e;
    sum += e;
  }
  for (let i = 0; i < n; i++) v[off + i] /= sum;
}

export interface Route {
  experts: number[];
  weights: number[];
}

/** Mixtral routing: softmax over all experts, top-k, renormalise the k weights to sum to 1. */
export function routeTopK(routerLogits: ArrayLike<number>, k: number): Route {
  const n = routerLogits.length;
  const p = new Float64Array(n);
  for (let i = 0; i < n; i++) p[i] = routerLogits[i];
  softmaxInPlace(p, 0, n);
  // Stable order: higher probability first, lower index on ties (as torch.topk on CPU in practice).
  const order = [...Array(n).keys()].sort((a, b) => p[b] - p[a] || a - b);
  const experts = order.slice(0, k);
  const total = experts.reduce((acc, e) => acc + p[e], 0);
  return { experts, weights: experts.map((e) => p[e] / total) };
}

/**
 * Causal GQA attention over a whole prompt (no past). q [S, nH·D], k/v [S, nKV·D], already rotated.
 * Query head h reads KV head floor(h / (nH / nKV)) (HF repeat_kv). Returns [S, nH·D].
 */
export function attention(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  seq: number,
  numHeads: number,
  numKvHeads: number,
  headDim: number,
  window: number | null,
): Float32Array {
  const group = numHeads / numKvHeads;
  const qStride = numHeads * headDim;
  const kvStride = numKvHeads * headDim;
  const scale = 1 / Math.sqrt(headDim);
  const out = new Float32Array(seq * qStride);
  const scores = new Float64Array(seq);
  for (let h = 0; h < numHeads; h++) {
    const kvh = Math.floor(h / group);
    for (let i = 0; i < seq; i++) {
      const qo = i * qStride + h * headDim;
      let m = -Infinity;
      for (let j = 0; j < seq; j++) {
        if (!attends(i, j, window)) {
          scores[j] = -Infinity;
          continue;
        }
        const ko = j * kvStride + kvh * headDim;
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += q[qo + d] * k[ko + d];
        scores[j] = dot * scale;
        if (scores[j] > m) m = scores[j];
      }
      let sum = 0;
      for (let j = 0; j < seq; j++) {
        const e = scores[j] === -Infinity ? 0 : Math.exp(scores[j] - m);
        scores[j] = e;
        sum += e;
      }
      const oo = i * qStride + h * headDim;
      for (let d = 0; d < headDim; d++) {
        let acc = 0;
        for (let j = 0; j < seq; j++) if (scores[j] !== 0) acc += scores[j] * v[j * kvStride + kvh * headDim + d];
        out[oo + d] = acc / sum;
      }
    }
  }
  return out;
}
