/**
 * Hostile schemas through the real backend process: the audit's refused ones are 400s within a second
 * (the process survives the 400 KB nested description), and schemas built to make masks expensive run
 * while another request's latency stays within 2x of what it is beside the same number of plain requests.
 */
import { describe, expect, it } from "vitest";
import { compileSchema } from "../../contract/json-schema";
import type { BackendErrorBody, GenerateEvent } from "../../contract/wire";
import { devModel } from "./engine-helpers";
import { post, readEvents, useBackend } from "./helpers/backend";
import { hostileSchemas } from "./helpers/schema-fuzz";

/** JSON text of a request; a schema too deep for JSON.stringify (the 400 KB brackets) is spliced in as text. */
function body(req: Record<string, unknown>): string {
  const rf = req.response_format as { schema?: unknown } | undefined;
  try {
    return JSON.stringify(req);
  } catch {
    const text = JSON.stringify({ ...req, response_format: { ...rf, schema: "@S@" } });
    return text.replace('"@S@"', `{"type":"object","description":${"[".repeat(200_000)}${"]".repeat(200_000)}}`);
  }
}

describe("backend: hostile schemas", () => {
  const b = useBackend(["--model", devModel("tiny")]);
  const base = { model: "tiny", input_ids: [1, 733, 16289, 28793], max_tokens: 48, temperature: 0 };
  let n = 0;
  const generate = async (extra: Record<string, unknown>) => {
    const t0 = performance.now();
    const res = await post(`${b.url}/v1/generate`, body({ ...base, request_id: `h${n++}`, ...extra }));
    const events = res.status === 200 ? await readEvents(res) : [];
    return { status: res.status, ms: performance.now() - t0, events, res };
  };

  it("each hostile schema is a 400 naming response_format.schema within a second, or runs; the process stays up", async () => {
    expect((await generate({})).status).toBe(200); // the process's first request pays its warm-up
    for (const c of hostileSchemas(17, 12)) {
      let refused = false;
      try {
        compileSchema(c.schema);
      } catch {
        refused = true;
      }
      const r = await generate({ response_format: { type: "json_schema", schema: c.schema }, max_tokens: 8 });
      if (!refused) {
        expect(r.status, c.name).toBe(200);
        continue;
      }
      expect(r.status, c.name).toBe(400);
      expect(r.ms, c.name).toBeLessThan(1000);
      const e = ((await r.res.json()) as BackendErrorBody).error;
      expect(e.param).toBe("response_format.schema");
      expect(e.code).toBe("unsupported_response_format");
    }
    const ok = await generate({});
    expect(ok.status).toBe(200);
  });

  it("expensive-mask schemas run, and a neighbour's latency stays within 2x of the same plain load", async () => {
    const heavy = [
      { anyOf: Array.from({ length: 64 }, (_, i) => ({ type: "string", maxLength: 1_000_000 + i })) },
      hostileSchemas(1, 1)[0]!.schema, // the audit's doubling chain, now one shared node per level
      {
        type: "object",
        properties: Object.fromEntries(
          Array.from({ length: 40 }, (_, i) => [
            `k${i}`,
            { anyOf: [{ type: "string", maxLength: 900_000 + i }, { type: "integer" }] },
          ]),
        ),
      },
    ];
    const probe = async (neighbours: Array<Record<string, unknown>>) => {
      const others = neighbours.map((x) => generate(x));
      const mine = await generate({ max_tokens: 32 });
      const rest = await Promise.all(others);
      for (const o of rest) expect(o.status).toBe(200);
      expect(mine.status).toBe(200);
      return mine.ms;
    };
    const plain = heavy.map(() => ({}));
    const hostile = heavy.map((schema) => ({
      response_format: { type: "json_schema", schema },
      temperature: 1,
      seed: 3,
    }));
    await probe(plain); // warm: vocabulary index, graphs
    await probe(hostile);
    const a: number[] = [];
    const h: number[] = [];
    for (let i = 0; i < 3; i++) {
      a.push(await probe(plain));
      h.push(await probe(hostile));
    }
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[1]!;
    expect(median(h), `plain ${a.map(Math.round)} hostile ${h.map(Math.round)}`).toBeLessThan(2 * median(a) + 100);
    const done = (
      await generate({ response_format: { type: "json_schema", schema: heavy[0] }, max_tokens: 8 })
    ).events.at(-1) as Extract<GenerateEvent, { type: "done" }>;
    expect(done.usage.completion_tokens).toBeGreaterThan(0); // it ran, and is billed like any request
  });
});
