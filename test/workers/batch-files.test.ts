/**
 * The Files API (R2 + D1 in miniflare) and batch input validation: uploads and their stated limits, one
 * key's files invisible to another, list paging, delete; line-by-line validation of an input file.
 */
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { FILE_LIMITS } from "../../worker/batch/files";
import { validateInput } from "../../worker/batch/input";
import { newKey } from "./chat-harness";
import { auth, chatLine, upload, url } from "./batch-harness";

describe("files API", () => {
  it("uploads, reads back, lists and deletes a file; another key gets 404 everywhere", async () => {
    const { key } = await newKey();
    const other = (await newKey()).key;
    const text = `${chatLine("a")}\n${chatLine("b")}\n`;
    const res = await upload(key, text);
    expect(res.status).toBe(200);
    const f = (await res.json()) as Record<string, unknown>;
    expect(f).toMatchObject({
      object: "file",
      purpose: "batch",
      filename: "in.jsonl",
      bytes: text.length,
      status: "processed",
    });
    expect(String(f.id)).toMatch(/^file-/);

    const got = await SELF.fetch(url(`/files/${f.id}`), { headers: auth(key) });
    expect(await got.json()).toEqual(f);
    const content = await SELF.fetch(url(`/files/${f.id}/content`), { headers: auth(key) });
    expect(await content.text()).toBe(text);

    for (const [path, method] of [
      [`/files/${f.id}`, "GET"],
      [`/files/${f.id}/content`, "GET"],
      [`/files/${f.id}`, "DELETE"],
    ] as const) {
      const r = await SELF.fetch(url(path), { method, headers: auth(other) });
      expect(r.status, path).toBe(404);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe("file_not_found");
    }
    const otherList = (await (await SELF.fetch(url("/files"), { headers: auth(other) })).json()) as { data: unknown[] };
    expect(otherList.data).toEqual([]);

    const del = await SELF.fetch(url(`/files/${f.id}`), { method: "DELETE", headers: auth(key) });
    expect(await del.json()).toEqual({ id: f.id, object: "file", deleted: true });
    expect((await SELF.fetch(url(`/files/${f.id}`), { headers: auth(key) })).status).toBe(404);
    expect((await SELF.fetch(url(`/files/${f.id}/content`), { headers: auth(key) })).status).toBe(404);
  });

  it("lists newest first, pages with after/limit", async () => {
    const { key } = await newKey();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(((await (await upload(key, chatLine(`x${i}`))).json()) as { id: string }).id);
    const seen: string[] = [];
    let after: string | null = null;
    for (;;) {
      const q: string = `/files?limit=2${after ? `&after=${after}` : ""}`;
      const page = (await (await SELF.fetch(url(q), { headers: auth(key) })).json()) as {
        data: { id: string }[];
        has_more: boolean;
        last_id: string;
      };
      seen.push(...page.data.map((d) => d.id));
      if (!page.has_more) break;
      after = page.last_id;
    }
    expect(seen.sort()).toEqual([...ids].sort());
    expect(new Set(seen).size).toBe(5);
    const bad = await SELF.fetch(url("/files?limit=0"), { headers: auth(key) });
    expect(bad.status).toBe(400);
  });

  it("refuses a wrong purpose, a missing file, an empty file, too many lines and an oversized line with clear 400s", async () => {
    const { key } = await newKey();
    const codeOf = async (r: Response) => {
      expect(r.status).toBe(400);
      return ((await r.json()) as { error: { code: string; param: string } }).error;
    };
    expect(await codeOf(await upload(key, chatLine("a"), "fine-tune"))).toMatchObject({
      code: "invalid_purpose",
      param: "purpose",
    });
    const noFile = new FormData();
    noFile.append("purpose", "batch");
    expect(
      await codeOf(await SELF.fetch(url("/files"), { method: "POST", headers: auth(key), body: noFile })),
    ).toMatchObject({
      code: "missing_file",
    });
    expect(await codeOf(await upload(key, "\n\n"))).toMatchObject({ code: "empty_file" });
    expect(await codeOf(await upload(key, "{}\n".repeat(FILE_LIMITS.maxLines + 1)))).toMatchObject({
      code: "too_many_lines",
    });
    const big = chatLine("big", { messages: [{ role: "user", content: "x".repeat(FILE_LIMITS.maxLineBytes) }] });
    const e = await codeOf(await upload(key, `${chatLine("ok")}\n${big}\n`));
    expect(e).toMatchObject({ code: "line_too_large" });
    expect((e as unknown as { message: string }).message).toContain("Line 2");
    const json = await SELF.fetch(url("/files"), {
      method: "POST",
      headers: { ...auth(key), "content-type": "application/json" },
      body: "{}",
    });
    expect(json.status).toBe(400);
  });
});

describe("batch input validation", () => {
  it("accepts good lines and refuses each bad one with the 400 an interactive request would get", () => {
    const lines = [
      chatLine("ok1"),
      "{not json",
      chatLine("ok1"), // duplicate custom_id
      JSON.stringify({ custom_id: "m", method: "GET", url: "/v1/chat/completions", body: {} }),
      JSON.stringify({ custom_id: "u", method: "POST", url: "/v1/embeddings", body: { model: "x", input: "y" } }),
      chatLine("s", { stream: true }),
      chatLine("t", { temperature: 9 }),
      JSON.stringify({ custom_id: "nobody", method: "POST", url: "/v1/chat/completions" }),
      "",
      chatLine("ok2"),
    ];
    const { valid, bad } = validateInput(lines.join("\n"), "/v1/chat/completions");
    expect(valid.map((v) => [v.line, v.customId])).toEqual([
      [1, "ok1"],
      [10, "ok2"],
    ]);
    expect(bad.map((b) => [b.line, b.customId, b.error.status, b.error.code, b.error.param])).toEqual([
      [2, null, 400, "invalid_json_line", null],
      [3, null, 400, "duplicate_custom_id", "custom_id"],
      [4, "m", 400, "invalid_method", "method"],
      [5, "u", 400, "mismatched_url", "url"],
      [6, "s", 400, "invalid_request", "body.stream"],
      [7, "t", 400, "invalid_request", "body.temperature"],
      [8, "nobody", 400, "invalid_line", "body"],
    ]);
  });

  it("checks embeddings lines against the embeddings endpoint", () => {
    const line = (id: string, body: unknown) =>
      JSON.stringify({ custom_id: id, method: "POST", url: "/v1/embeddings", body });
    const { valid, bad } = validateInput(
      [line("a", { model: "mistral-embed", input: "hi" }), line("b", { model: "mistral-embed" })].join("\n"),
      "/v1/embeddings",
    );
    expect(valid.map((v) => v.customId)).toEqual(["a"]);
    expect(bad.map((b) => b.error.param)).toEqual(["body.input"]);
  });
});
