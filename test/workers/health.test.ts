import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";

describe("worker basics", () => {
  it("answers /health with a request id", async () => {
    const res = await SELF.fetch("https://edge.test/health");
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toMatch(/^req_/);
  });

  it("unknown routes get a 404 in the OpenAI error shape", async () => {
    const res = await SELF.fetch("https://edge.test/v1/nope");
    expect(res.status).toBe(404);
    const body = (await res.json()) as { error: { type: string; message: string } };
    expect(body.error.type).toBe("not_found_error");
    expect(res.headers.get("x-request-id")).toBeTruthy();
  });
});
