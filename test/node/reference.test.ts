import { describe, expect, it } from "vitest";
import { applyRope, attends, attention, rmsNorm, routeTopK, ropeInvFreq } from "../../scripts/reference/math";
import { isInt4Weight, quantDequantInt4 } from "../../scripts/reference/quant";

describe("reference math (hand-computed)", () => {
  it("RMSNorm: x · rsqrt(mean(x²) + eps) · w", () => {
    const y = rmsNorm(new Float32Array([3, 4]), 1, 2, new Float32Array([1, 2]), 0);
    const r = 1 / Math.sqrt(12.5);
    expect(y[0]).toBeCloseTo(3 * r, 6);
    expect(y[1]).toBeCloseTo(8 * r, 6);
  });

  it("RoPE pairs element i with i + d/2 (rotate_half) and uses theta^(-2i/d)", () => {
    const inv = ropeInvFreq(4, 10000);
    expect(inv[0]).toBe(1);
    expect(inv[1]).toBeCloseTo(0.01, 12);
    const v = new Float32Array([1, 2, 3, 4]);
    applyRope(v, 0, 4, 0, inv);
    expect([...v]).toEqual([1, 2, 3, 4]);
    applyRope(v, 0, 4, 1, inv);
    const c1 = Math.cos(1),
      s1 = Math.sin(1),
      c2 = Math.cos(0.01),
      s2 = Math.sin(0.01);
    expect(v[0]).toBeCloseTo(1 * c1 - 3 * s1, 6);
    expect(v[2]).toBeCloseTo(3 * c1 + 1 * s1, 6);
    expect(v[1]).toBeCloseTo(2 * c2 - 4 * s2, 6);
    expect(v[3]).toBeCloseTo(4 * c2 + 2 * s2, 6);
  });

  it("router: softmax over all experts, top-k, renormalised", () => {
    const r = routeTopK([1, 3, 2, 0], 2);
    expect(r.experts).toEqual([1, 2]);
    const sig = 1 / (1 + Math.exp(-1));
    expect(r.weights[0]).toBeCloseTo(sig, 12);
    expect(r.weights[1]).toBeCloseTo(1 - sig, 12);
  });

  it("sliding window: i sees j iff i - window < j <= i (HF), i.e. `window` keys", () => {
    expect([0, 1, 2, 3, 4, 5, 6].filter((j) => attends(5, j, 3))).toEqual([3, 4, 5]);
    expect([0, 1, 2].filter((j) => attends(1, j, 3))).toEqual([0, 1]);
    expect([0, 1, 2, 3].filter((j) => attends(2, j, null))).toEqual([0, 1, 2]);
  });

  it("attention: uniform scores average the visible values; GQA maps head h to kv head h / (nH/nKV)", () => {
    const S = 6,
      nH = 4,
      nKV = 2,
      D = 2;
    const q = new Float32Array(S * nH * D); // zero queries -> uniform softmax over visible keys
    const k = new Float32Array(S * nKV * D);
    const v = new Float32Array(S * nKV * D);
    for (let j = 0; j < S; j++) {
      v[(j * nKV + 0) * D] = j; // kv head 0 carries the position
      v[(j * nKV + 1) * D] = 100 + j; // kv head 1 carries 100 + position
    }
    const out = attention(q, k, v, S, nH, nKV, D, 3);
    const at = (i: number, h: number) => out[(i * nH + h) * D];
    expect(at(5, 0)).toBeCloseTo(4, 6); // mean(3,4,5)
    expect(at(5, 1)).toBeCloseTo(4, 6);
    expect(at(5, 2)).toBeCloseTo(104, 4);
    expect(at(5, 3)).toBeCloseTo(104, 4);
    expect(at(1, 0)).toBeCloseTo(0.5, 6); // mean(0,1)
    const full = attention(q, k, v, S, nH, nKV, D, null);
    expect(full[5 * nH * D]).toBeCloseTo(2.5, 6);
  });

  it("int4: scale = w_at_absmax / -8, q = clamp(round(w/scale), -8, 7), per 32-block along the row", () => {
    const w = new Float32Array(64);
    w[0] = -1.6; // absmax of block 0 is negative -> scale 0.2
    w[1] = 0.3; // 1.5 -> 2 -> 0.4
    w[2] = 1.5; // 7.5 -> 8 -> clamp 7 -> 1.4
    w[32] = 1.6; // absmax of block 1 positive -> scale -0.2 and 1.6 -> -8 -> exact
    w[33] = -1.5; // 7.5 -> clamp 7 -> -1.4
    w[34] = 0.05; // -0.25 -> 0
    const d = quantDequantInt4(w, 1, 64);
    expect(d[0]).toBeCloseTo(-1.6, 6);
    expect(d[1]).toBeCloseTo(0.4, 6);
    expect(d[2]).toBeCloseTo(1.4, 6);
    expect(d[32]).toBeCloseTo(1.6, 6);
    expect(d[33]).toBeCloseTo(-1.4, 6);
    expect(d[34]).toBe(0);
    expect(d[3]).toBe(0);
  });

  it("int4 set: projections, experts, dense MLP and lm_head; not embeddings, norms, router", () => {
    for (const n of [
      "model.layers.0.self_attn.q_proj.weight",
      "model.layers.1.self_attn.o_proj.weight",
      "model.layers.0.block_sparse_moe.experts.5.w2.weight",
      "model.layers.0.mlp.down_proj.weight",
      "lm_head.weight",
    ])
      expect(isInt4Weight(n), n).toBe(true);
    for (const n of [
      "model.embed_tokens.weight",
      "model.norm.weight",
      "model.layers.0.input_layernorm.weight",
      "model.layers.0.block_sparse_moe.gate.weight",
    ])
      expect(isInt4Weight(n), n).toBe(false);
  });
});
