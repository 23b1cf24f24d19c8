/** The int4 block quantizer of the model builder (scripts/model-builder/quantize.ts). */
import { describe, expect, it } from "vitest";
import { dequantizeRow, quantizeRow } from "../../scripts/model-builder/quantize";

describe("quantizer", () => {
  it("maps each block's largest-magnitude weight to -8 and round-trips within half a step", () => {
    const K = 64;
    const src = new Float32Array(K);
    for (let i = 0; i < 32; i++) src[i] = Math.sin(i) * 0.1;
    src[5] = -0.25; // block 0 absmax, negative -> positive scale
    src[9] = 0.25; // equal magnitude, opposite sign: clamps to +7
    // block 1 all zero
    const q = new Uint8Array(K / 2);
    const scales = new Float32Array(2);
    quantizeRow(src, 0, K, 32, q, 0, scales, 0);
    expect(scales[0]).toBe(Math.fround(-0.25 / -8));
    expect(q[2] >> 4).toBe(0); // byte 2 = elements 4 (low), 5 (high); element 5 -> q 0 = -8
    expect(q[4] >> 4).toBe(15); // element 9 -> +7 (clamped)
    const back = dequantizeRow(q, 0, scales, 0, K, 32);
    for (let i = 0; i < 32; i++)
      if (i !== 9) expect(Math.abs(back[i] - src[i])).toBeLessThanOrEqual(scales[0] / 2 + 1e-9);
    expect(scales[1]).toBe(0);
    expect([...q.subarray(16)]).toEqual(new Array(16).fill(0x88));
    expect([...back.subarray(32)].every((v) => v === 0)).toBe(true);
  });

  it("packs low nibble first and uses round-half-up", () => {
    const src = Float32Array.from({ length: 32 }, (_, i) =>
      i === 0 ? -8 : i === 1 ? 1 : i === 2 ? 2.5 : i === 3 ? -2.5 : 0,
    );
    const q = new Uint8Array(16);
    const s = new Float32Array(1);
    quantizeRow(src, 0, 32, 32, q, 0, s, 0);
    expect(s[0]).toBe(1);
    expect(q[0]).toBe(0 | ((1 + 8) << 4));
    expect(q[1]).toBe((3 + 8) | ((-2 + 8) << 4));
  });
});
