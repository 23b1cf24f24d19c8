/**
 * The tools leaf (worker/tools/): request validation, the call grammar, and the incremental parser.
 * Pure functions; the stack tests (e2e-tools) cover the same paths through real clients.
 */
import Ajv from "ajv";
import { describe, expect, it } from "vitest";
import { compileSchema } from "../../contract/json-schema";
import {
  callArraySchema,
  checkToolAnswers,
  type HistoryMessage,
  historyCalls,
  MAX_TOOLS,
  parseToolConfig,
  planTools,
  ToolCallParser,
  ToolStream,
  ToolsError,
  type ToolEvent,
} from "../../worker/tools";

const fn = (name: string, parameters?: unknown) => ({ type: "function", function: { name, parameters } });
const weather = fn("get_weather", {
  type: "object",
  properties: { city: { type: "string" }, unit: { enum: ["c", "f"] } },
  required: ["city"],
});

function refusal(f: () => unknown): ToolsError {
  try {
    f();
  } catch (e) {
    if (e instanceof ToolsError) return e;
    throw e;
  }
  throw new Error("accepted");
}

describe("parseToolConfig", () => {
  it("defaults: auto, parallel; none/required/any/named", () => {
    const c = parseToolConfig([weather], undefined, undefined)!;
    expect(c.choice).toEqual({ type: "auto" });
    expect(c.parallel).toBe(true);
    expect(parseToolConfig([weather], "none", null)!.choice).toEqual({ type: "none" });
    expect(parseToolConfig([weather], "required", false)!.choice).toEqual({ type: "required" });
    expect(parseToolConfig([weather], "any", null)!.choice).toEqual({ type: "required" });
    expect(parseToolConfig([weather], { type: "function", function: { name: "get_weather" } }, null)!.choice).toEqual({
      type: "function",
      name: "get_weather",
    });
    expect(parseToolConfig([], "auto", null)).toBeNull();
    expect(parseToolConfig(null, "none", null)).toBeNull();
  });

  it("a function without parameters takes an empty object", () => {
    const c = parseToolConfig([{ type: "function", function: { name: "ping" } }], "required", null)!;
    expect(c.functions[0]!.parameters).toEqual({ type: "object", properties: {}, additionalProperties: false });
  });

  it.each([
    [[fn("bad name")], undefined, undefined, "tools[0].function.name"],
    [[fn("x".repeat(65))], undefined, undefined, "tools[0].function.name"],
    [[weather, fn("get_weather")], undefined, undefined, "tools[1].function.name"],
    [
      [weather, fn("f", { type: "object", properties: { a: { type: "strng" } } })],
      undefined,
      undefined,
      "tools[1].function.parameters.properties.a.type",
    ],
    [[fn("f", { type: "object", not: {} })], undefined, undefined, "tools[0].function.parameters.not"],
    [
      [fn("f", { type: "object", properties: { xs: { type: "array", items: { format: "x" } } } })],
      undefined,
      undefined,
      "tools[0].function.parameters.properties.xs.items.format",
    ],
    [[{ function: { name: "f", description: 3 } }], undefined, undefined, "tools[0].function.description"],
    [[{ type: "retrieval" }], undefined, undefined, "tools[0].type"],
    ["f", undefined, undefined, "tools"],
    [Array.from({ length: MAX_TOOLS + 1 }, (_, i) => fn(`f${i}`)), undefined, undefined, "tools"],
    [[fn("f", { type: "object", description: "x".repeat(70_000) })], undefined, undefined, "tools"],
    [[weather], "sometimes", undefined, "tool_choice"],
    [[weather], { type: "function", function: { name: "nope" } }, undefined, "tool_choice.function.name"],
    [[], "required", undefined, "tool_choice"],
    [[weather], "auto", "yes", "parallel_tool_calls"],
  ])("refuses %#", (tools, choice, parallel, param) => {
    expect(refusal(() => parseToolConfig(tools, choice, parallel)).param).toBe(param);
  });
});

describe("call grammar", () => {
  const ajv = new Ajv({ strict: false });
  const nested = fn("make_person", {
    type: "object",
    properties: { who: { $ref: "#/$defs/Person" }, tags: { type: "array", items: { type: "string" } } },
    required: ["who"],
    $defs: { Person: { type: "object", properties: { name: { type: "string" } }, required: ["name"] } },
  });

  it("is a schema the constraint compiler accepts, with $defs hoisted per function", () => {
    const config = parseToolConfig([weather, nested], "required", null)!;
    const schema = callArraySchema(config);
    expect(() => compileSchema(schema)).not.toThrow();
    expect(Object.keys(schema.$defs as object)).toEqual(["t1_Person"]);
    const ok = ajv.compile(schema);
    expect(ok([{ name: "get_weather", arguments: { city: "Paris" } }])).toBe(true);
    expect(
      ok([
        { name: "make_person", arguments: { who: { name: "A" } } },
        { name: "get_weather", arguments: { city: "x" } },
      ]),
    ).toBe(true);
    expect(ok([{ name: "make_person", arguments: { who: {} } }])).toBe(false);
    expect(ok([{ name: "other", arguments: {} }])).toBe(false);
    expect(ok([])).toBe(false);
  });

  it("exactly one call when named or parallel_tool_calls is false; only the named function", () => {
    const named = callArraySchema(
      parseToolConfig([weather, nested], { type: "function", function: { name: "make_person" } }, null)!,
    );
    expect(named.maxItems).toBe(1);
    expect(ajv.compile(named)([{ name: "get_weather", arguments: { city: "x" } }])).toBe(false);
    expect(callArraySchema(parseToolConfig([weather], "required", false)!).maxItems).toBe(1);
  });

  it("plans: none sends no grammar, auto a trigger, forced ends the prompt with the marker", () => {
    const none = planTools(parseToolConfig([weather], "none", null)!);
    expect([none.responseFormat, none.formatTrigger, none.parse, none.template.openCall]).toEqual([
      null,
      undefined,
      null,
      false,
    ]);
    const auto = planTools(parseToolConfig([weather], "auto", null)!);
    expect([auto.formatTrigger, auto.parse, auto.template.openCall]).toEqual(["[TOOL_CALLS]", "auto", false]);
    expect(auto.responseFormat?.type).toBe("json_schema");
    const forced = planTools(parseToolConfig([weather], "any", null)!);
    expect([forced.formatTrigger, forced.parse, forced.template.openCall]).toEqual([undefined, "forced", true]);
  });
});

describe("history", () => {
  it("takes OpenAI's string arguments and Mistral's object arguments", () => {
    expect(
      historyCalls(
        [
          { id: "call_abc123", type: "function", function: { name: "f", arguments: '{"a": 1}' } },
          { id: "D681PevKs", function: { name: "g", arguments: { b: 2 } } },
        ],
        "messages[1].tool_calls",
      ),
    ).toEqual([
      { id: "call_abc123", name: "f", arguments: { a: 1 } },
      { id: "D681PevKs", name: "g", arguments: { b: 2 } },
    ]);
    expect(refusal(() => historyCalls([{ id: "x", function: { name: "f", arguments: "{" } }], "m")).param).toBe(
      "m[0].function.arguments",
    );
    expect(refusal(() => historyCalls([{ function: { name: "f", arguments: "{}" } }], "m")).param).toBe("m[0].id");
  });

  it("a tool message must answer an earlier call; Mistral's name finds a call without an id", () => {
    const calls = [{ id: "D681PevKs", name: "f", arguments: {} }];
    expect(refusal(() => checkToolAnswers([{ role: "user" }, { role: "tool", toolCallId: "nope" }])).param).toBe(
      "messages[1].tool_call_id",
    );
    expect(
      refusal(() =>
        checkToolAnswers([
          { role: "tool", toolCallId: "D681PevKs" },
          { role: "assistant", toolCalls: calls },
        ]),
      ).param,
    ).toBe("messages[0].tool_call_id");
    const byName: HistoryMessage[] = [
      { role: "user" },
      { role: "assistant", toolCalls: calls },
      { role: "tool", name: "f" },
    ];
    checkToolAnswers(byName);
    expect(byName[2]!.toolCallId).toBe("D681PevKs");
  });
});

describe("ToolCallParser", () => {
  let n = 0;
  const ids = () => `id${n++}`;
  const run = (forced: boolean, chunks: string[]) => {
    n = 0;
    const p = new ToolCallParser(forced, ids);
    const events: ToolEvent[] = [];
    for (const c of chunks) events.push(...p.push(c));
    events.push(...p.end());
    return { events, result: p.result() };
  };
  const text =
    ' [{"name": "get_weather", "arguments": {"city": "Pa\\"r}is", "n": [1, {"x": -2.5e3}]}}, {"name":"f","arguments":{}}]';

  it("forced: one call event per call, then its arguments in fragments, whatever the chunking", () => {
    for (const size of [1, 2, 3, 7, text.length]) {
      const chunks = text.match(new RegExp(`[\\s\\S]{1,${size}}`, "g"))!;
      const { events, result } = run(true, chunks);
      expect(events.filter((e) => e.type === "call")).toEqual([
        { type: "call", index: 0, id: "id0", name: "get_weather" },
        { type: "call", index: 1, id: "id1", name: "f" },
      ]);
      const args = (i: number) =>
        events
          .filter((e) => e.type === "arguments" && e.index === i)
          .map((e) => (e as { text: string }).text)
          .join("");
      expect(JSON.parse(args(0))).toEqual({ city: 'Pa"r}is', n: [1, { x: -2500 }] });
      expect(args(1)).toBe("{}");
      expect(result.calls).toEqual([
        { id: "id0", name: "get_weather", arguments: '{"city": "Pa\\"r}is", "n": [1, {"x": -2.5e3}]}' },
        { id: "id1", name: "f", arguments: "{}" },
      ]);
      expect(result.content).toBe("");
    }
  });

  it("auto: text before the marker is content, a marker split across chunks is held back", () => {
    const { events, result } = run(false, [
      "Let me check. [TOOL",
      "_CALLS] [{",
      '"name": "f", "arguments": {"a": 1}}]',
    ]);
    expect(events[0]).toEqual({ type: "content", text: "Let me check. " });
    expect(
      events
        .filter((e) => e.type === "content")
        .map((e) => (e as { text: string }).text)
        .join(""),
    ).toBe("Let me check. ");
    expect(result.calls).toEqual([{ id: "id0", name: "f", arguments: '{"a": 1}' }]);
    expect(result.content).toBe("Let me check. ");
  });

  it("auto without the marker is all content, a trailing partial marker included", () => {
    const { events, result } = run(false, ["Hello [TOO"]);
    expect(events).toEqual([
      { type: "content", text: "Hello " },
      { type: "content", text: "[TOO" },
    ]);
    expect(result).toEqual({ content: "Hello [TOO", calls: null, raw: "Hello [TOO" });
  });

  it("a list cut short (max_tokens) is no call: the whole text is content", () => {
    const { result } = run(true, [' [{"name": "f", "arguments": {"a": ']);
    expect(result.calls).toBeNull();
    expect(result.content).toBe(' [{"name": "f", "arguments": {"a": ');
    expect(run(true, [" []"]).result.calls).toBeNull();
  });

  it("arguments before the name are held until the call is announced", () => {
    const { events } = run(true, ['[{"arguments": {"a": 1}, "name": "f"}]']);
    expect(events).toEqual([
      { type: "call", index: 0, id: "id0", name: "f" },
      { type: "arguments", index: 0, text: '{"a": 1}' },
    ]);
  });
});

describe("ToolStream", () => {
  const plan = planTools(parseToolConfig([weather], "required", null)!);
  const text = '[{"name": "get_weather", "arguments": {"city": "Paris"}}]';

  it("live: call events as they come; finish 'stop' after a complete list is 'tool_calls'", () => {
    const s = new ToolStream(plan, true, () => "id");
    const events = [...s.push(text.slice(0, 30)), ...s.push(text.slice(30))];
    expect(events[0]).toEqual({ type: "call", index: 0, id: "id", name: "get_weather" });
    const fin = s.finish("stop");
    expect(fin.reason).toBe("tool_calls");
    expect(fin.events).toEqual([]);
  });

  it("buffered: calls only at the end; a cut list is its text, never a call", () => {
    const s = new ToolStream(plan, false, () => "id");
    expect(s.push(text)).toEqual([]);
    expect(s.finish("stop").events).toEqual([
      { type: "call", index: 0, id: "id", name: "get_weather" },
      { type: "arguments", index: 0, text: '{"city": "Paris"}' },
    ]);
    const cut = new ToolStream(plan, false, () => "id");
    cut.push(text.slice(0, 25));
    expect(cut.finish("length")).toMatchObject({
      reason: "length",
      events: [{ type: "content", text: text.slice(0, 25) }],
    });
    // A complete list that did not end on its own (max_tokens hit right at the end) is not a call either.
    const full = new ToolStream(plan, false, () => "id");
    full.push(text);
    expect(full.finish("length")).toMatchObject({ reason: "length", events: [{ type: "content", text }] });
  });
});
