/**
 * A smaller run of the schema fuzz through the real backend process and a dev model (temperature 1):
 * every output that ends with "stop" parses and validates with ajv + ajv-formats.
 */
import { describe, expect, it } from "vitest";
import type { GenerateEvent } from "../../contract/wire";
import { mistralTokenBytes } from "../../gpu-backend/engine/constraint/vocab";
import { devModel } from "./engine-helpers";
import { post, readEvents, useBackend } from "./helpers/backend";
import { makeAjv, randomSchema, rngFrom } from "./helpers/schema-fuzz";

describe("backend: schema fuzz on the tiny dev model", () => {
  const b = useBackend(["--model", devModel("tiny")]);
  const ajv = makeAjv();

  it("16 random schemas from the subset, temperature 1: every stopped output validates", async () => {
    const r = rngFrom(2026);
    const vocab = mistralTokenBytes();
    let stopped = 0;
    for (let i = 0; i < 16; i++) {
      const schema = randomSchema(r);
      const res = await post(`${b.url}/v1/generate`, {
        model: "tiny",
        request_id: `fz${i}`,
        input_ids: [1, 733, 16289, 28793],
        max_tokens: 300,
        temperature: 1,
        seed: i,
        response_format: { type: "json_schema", schema },
      });
      expect(res.status).toBe(200);
      const events = await readEvents(res);
      const ids = events.flatMap((e) => (e.type === "tokens" ? e.ids : []));
      const done = events.at(-1) as Extract<GenerateEvent, { type: "done" }>;
      if (done.finish_reason !== "stop") continue;
      stopped++;
      const text = Buffer.concat(ids.map((id) => vocab[id]!)).toString();
      const check = ajv.compile(schema);
      expect(check(JSON.parse(text)), `${JSON.stringify(schema)}\n${text}`).toBe(true);
    }
    expect(stopped).toBeGreaterThan(4);
  });
});
