import { describe, expect, it } from "vitest";
import { GenerateRequestSchema } from "../../contract/wire";

describe("wire contract", () => {
  it("applies sampling defaults and rejects bad ids", () => {
    const ok = GenerateRequestSchema.parse({ model: "tiny", input_ids: [1, 2], max_tokens: 4, request_id: "r1" });
    expect(ok.temperature).toBe(0);
    expect(ok.stop_token_ids).toEqual([]);
    expect(
      GenerateRequestSchema.safeParse({ model: "tiny", input_ids: [-1], max_tokens: 4, request_id: "r" }).success,
    ).toBe(false);
  });
});
