/** The backend's HTTP side of response_format and logprobs: 400s that name the field, NDJSON logprobs. */
import { describe, expect, it } from "vitest";
import { parseGenerateEvent, type BackendErrorBody, type GenerateEvent } from "../../contract/wire";
import { devModel } from "./engine-helpers";
import { post, useBackend } from "./helpers/backend";

describe("backend: response_format and logprobs", () => {
  const b = useBackend(["--model", devModel("tiny")]);

  const base = {
    model: "tiny",
    request_id: "s",
    input_ids: [1, 733, 16289, 28793],
    max_tokens: 40,
    temperature: 1,
    seed: 4,
  };
  const bad = async (body: Record<string, unknown>) => {
    const res = await post(`${b.url}/v1/generate`, { ...base, ...body });
    expect(res.status).toBe(400);
    return ((await res.json()) as BackendErrorBody).error;
  };

  it("an unsupported schema keyword is a 400 naming it, with param response_format.schema", async () => {
    for (const [keyword, schema] of [
      ["pattern", { type: "object", properties: { a: { type: "string", pattern: "(?<=x)" } } }],
      ["format", { type: "string", format: "uri" }],
      ["oneOf", { oneOf: [{ type: "object" }, { type: "object", properties: {} }] }],
      [
        "$ref",
        {
          $defs: { n: { type: "object", properties: { n: { $ref: "#/$defs/n" } }, required: ["n"] } },
          $ref: "#/$defs/n",
        },
      ],
    ] as const) {
      const e = await bad({ response_format: { type: "json_schema", schema } });
      expect(e.code).toBe("unsupported_response_format");
      expect(e.param).toBe("response_format.schema");
      expect(e.message).toContain(`'${keyword}'`);
    }
  });

  it("malformed fields are 400s naming them", async () => {
    expect((await bad({ response_format: { type: "xml" } })).param).toBe("response_format.type");
    expect((await bad({ top_logprobs: 21, logprobs: true })).param).toBe("top_logprobs");
    expect((await bad({ top_logprobs: 2 })).param).toBe("top_logprobs");
    expect((await bad({ logprobs: "yes" })).param).toBe("logprobs");
  });

  it("a constrained stream with logprobs: one logprob per id, and a stop is a parseable document", async () => {
    const res = await post(`${b.url}/v1/generate`, {
      ...base,
      response_format: {
        type: "json_schema",
        schema: { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"] },
      },
      logprobs: true,
      top_logprobs: 3,
    });
    expect(res.status).toBe(200);
    const events = (await res.text()).trim().split("\n").map(parseGenerateEvent);
    const done = events.pop() as Extract<GenerateEvent, { type: "done" }>;
    expect(done.type).toBe("done");
    expect(done.finish_reason).toBe("stop");
    for (const e of events) {
      if (e.type !== "tokens") continue;
      expect(e.logprobs).toHaveLength(e.ids.length);
      for (const lp of e.logprobs!) expect(lp.top.length).toBeGreaterThan(0);
    }
    expect(done.usage.completion_tokens).toBe(events.flatMap((e) => (e.type === "tokens" ? e.ids : [])).length);
  });
});
