/**
 * Issue 15 on the backend: no open backend by accident (#4), request ids restricted and no orphaned
 * generations (#7), a body cap before parsing (#2). Real backend processes.
 */
import { describe, expect, it } from "vitest";
import type { BackendErrorBody } from "../../contract/wire";
import { isLoopback } from "../../gpu-backend/config";
import { devModel } from "./engine-helpers";
import { auth, ids, metric, post, spawnBackend, startBackend, useBackend } from "./helpers/backend";

describe("backend auth at startup", () => {
  it("refuses a non-loopback address without a token (exit 2, one clear line)", async () => {
    for (const env of [{ BACKEND_TOKEN: undefined }, { BACKEND_TOKEN: "" }]) {
      const b = startBackend(["--model", devModel("tiny"), "--host", "0.0.0.0"], { env });
      expect(await b.exited).toBe(2);
      expect(b.stderr()).toMatch(/refusing to serve 0\.0\.0\.0 without a token/);
      expect(b.stderr()).not.toMatch(/listening/);
    }
  });

  it("--insecure starts without a token and prints a loud warning; serves unauthenticated", async () => {
    const b = await spawnBackend(["--model", devModel("tiny"), "--host", "0.0.0.0", "--insecure"], {
      env: { BACKEND_TOKEN: undefined },
    });
    try {
      expect(b.stderr()).toMatch(/WARNING: --insecure: the backend serves 0\.0\.0\.0 WITHOUT AUTHENTICATION/);
      const port = new URL(b.url).port;
      await b.ready;
      expect((await fetch(`http://127.0.0.1:${port}/v1/models`)).status).toBe(200);
    } finally {
      b.proc.kill("SIGKILL");
    }
  });

  it("loopback without a token starts (with a note); a token on 0.0.0.0 starts quietly", async () => {
    const a = await spawnBackend(["--model", devModel("tiny")], { env: { BACKEND_TOKEN: undefined } });
    a.proc.kill("SIGKILL");
    expect(a.stderr()).toMatch(/no BACKEND_TOKEN: unauthenticated.*loopback/);
    const b = await spawnBackend(["--model", devModel("tiny"), "--host", "0.0.0.0"]);
    b.proc.kill("SIGKILL");
    expect(b.stderr()).not.toMatch(/WARNING|unauthenticated/);
  });

  it("isLoopback: 127/8, ::1, localhost only", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"])
      expect(isLoopback(h), h).toBe(true);
    for (const h of ["0.0.0.0", "::", "10.0.0.1", "192.168.1.2", "example.com", "128.0.0.1", "localhost.evil"])
      expect(isLoopback(h), h).toBe(false);
  });
});

describe("backend request ids and body cap", () => {
  const b = useBackend(["--model", devModel("tiny"), "--max-body-mb", "1"]);
  const expectOpenAiError = async (res: Response, status: number, param: string | null) => {
    expect(res.status).toBe(status);
    expect(res.headers.get("content-type")).toContain("application/json");
    const body = (await res.json()) as BackendErrorBody;
    expect(Object.keys(body.error).sort()).toEqual(["code", "message", "param", "type"]);
    expect(body.error.param).toBe(param);
    expect(body.error.message).not.toMatch(/\n\s+at /);
    return body.error;
  };
  const busy = async () =>
    (await metric(b, 'moe_edge_num_requests_waiting{model_name="tiny"}')) +
    (await metric(b, 'moe_edge_num_requests_running{model_name="tiny"}'));

  it("a request_id outside [A-Za-z0-9_-]{1,128} is a 400 naming request_id, and no generation starts", async () => {
    for (const id of ["a\r\nx-injected: 1", "a b", "é", "x".repeat(129), "", "../etc"]) {
      const res = await post(`${b.url}/v1/generate`, {
        model: "tiny",
        input_ids: ids(8),
        max_tokens: 3000,
        request_id: id,
      });
      const e = await expectOpenAiError(res, 400, "request_id");
      expect(e.type).toBe("invalid_request_error");
      expect(await busy(), JSON.stringify(id)).toBe(0);
    }
    const cancel = await post(`${b.url}/v1/cancel`, { request_id: "a\nb" });
    await expectOpenAiError(cancel, 400, "request_id");
    const embed = await post(`${b.url}/v1/embed`, { model: "tiny", inputs: [[1, 2]], request_id: "a\nb" });
    await expectOpenAiError(embed, 400, "request_id");
    expect(b.stdout()).not.toMatch(/"event":"generate"/);
  });

  it("accepts the edge's ids (req_<hex>, 128 characters of the alphabet)", async () => {
    for (const id of ["req_0123abcdef", `${"A-z_9".repeat(25)}abc`]) {
      const res = await post(`${b.url}/v1/generate`, {
        model: "tiny",
        input_ids: ids(4),
        max_tokens: 1,
        request_id: id,
      });
      expect(res.status).toBe(200);
      expect(res.headers.get("x-request-id")).toBe(id);
      await res.text();
    }
  });

  it("bodies over --max-body-mb get 413 before parsing: with Content-Length, and chunked", async () => {
    const big = JSON.stringify({ model: "tiny", input_ids: ids(200_000), max_tokens: 1, request_id: "big" });
    expect(big.length).toBeGreaterThan(2 ** 20);
    await expectOpenAiError(await post(`${b.url}/v1/generate`, big), 413, null);
    const chunked = new ReadableStream<Uint8Array>({
      start(ctl) {
        const bytes = new TextEncoder().encode(big);
        for (let i = 0; i < bytes.length; i += 65536) ctl.enqueue(bytes.subarray(i, i + 65536));
        ctl.close();
      },
    });
    const res = await fetch(`${b.url}/v1/embed`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: chunked,
      duplex: "half",
    } as RequestInit);
    await expectOpenAiError(res, 413, null);
    // A body under the cap still works.
    const ok = await post(`${b.url}/v1/generate`, {
      model: "tiny",
      input_ids: ids(4),
      max_tokens: 1,
      request_id: "small",
    });
    expect(ok.status).toBe(200);
    await ok.text();
  });

  it("validation and auth answer in the error shape: malformed JSON, a wrong or malformed bearer header", async () => {
    const bad = await expectOpenAiError(await post(`${b.url}/v1/generate`, '{"model": "tiny",'), 400, null);
    expect(bad.code).toBe("invalid_json");
    const missing = await expectOpenAiError(await post(`${b.url}/v1/cancel`, {}), 400, "request_id");
    expect(missing.code).toBe("invalid_request");
    for (const authorization of ["Bearer wrong-token", "Bearer a b\\c", "Basic dXNlcjpwYXNz", "Bearer"]) {
      const e = await expectOpenAiError(
        await post(`${b.url}/v1/cancel`, { request_id: "x" }, { authorization }),
        401,
        null,
      );
      expect(e).toMatchObject({ type: "authentication_error", code: "unauthorized" });
    }
  });
});
