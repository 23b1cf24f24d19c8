/** CORS off by default; with CORS_ORIGINS, an allow-list, preflight answered before auth. */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { createApp } from "../../worker/app";
import { newKey } from "./chat-harness";

const ctx = { waitUntil() {}, passThroughOnException() {}, props: {} } as unknown as ExecutionContext;
const app = createApp();
const fetchWith = (origins: string | undefined, req: Request) => app.fetch(req, { ...env, CORS_ORIGINS: origins }, ctx);
const preflight = (origin: string, path = "/v1/chat/completions") =>
  new Request(`https://edge.test${path}`, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization, content-type",
    },
  });

describe("CORS", () => {
  it("is off by default: no CORS headers, a preflight is not answered", async () => {
    const res = await fetchWith(undefined, preflight("https://app.example.com"));
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    expect(res.status).not.toBe(204);
  });

  it("answers a preflight from an allowed origin (no key needed), not from others", async () => {
    const origins = "https://app.example.com, http://localhost:3000";
    const ok = await fetchWith(origins, preflight("http://localhost:3000"));
    expect(ok.status).toBe(204);
    expect(ok.headers.get("access-control-allow-origin")).toBe("http://localhost:3000");
    expect(ok.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("authorization");
    expect(ok.headers.get("access-control-allow-methods")).toContain("POST");
    const other = await fetchWith(origins, preflight("https://evil.example.com"));
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
    // Never on the admin API.
    const admin = await fetchWith(origins, preflight("http://localhost:3000", "/v1/admin/keys"));
    expect(admin.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("actual requests carry the headers, errors included, so a browser can read the 401 or the answer", async () => {
    const origins = "https://app.example.com";
    const { key } = await newKey();
    const good = await fetchWith(
      origins,
      new Request("https://edge.test/v1/models", { headers: { origin: origins, authorization: `Bearer ${key}` } }),
    );
    expect(good.status).toBe(200);
    expect(good.headers.get("access-control-allow-origin")).toBe(origins);
    expect(good.headers.get("access-control-expose-headers")).toContain("x-request-id");
    const bad = await fetchWith(
      origins,
      new Request("https://edge.test/v1/models", {
        headers: { origin: origins, authorization: "Bearer nope", "cf-connecting-ip": "192.0.2.55" },
      }),
    );
    expect(bad.status).toBe(401);
    expect(bad.headers.get("access-control-allow-origin")).toBe(origins);
  });
});
