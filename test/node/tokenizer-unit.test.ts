/**
 * Chat-template rules, streaming detokenizer and stop matcher (no reference data needed).
 */
import { describe, expect, it } from "vitest";
import {
  BOS_ID,
  EOS_ID,
  applyChatTemplate,
  createDetokenizer,
  createStopMatcher,
  decode,
  encode,
  type ChatMessage,
  TokenizerError,
  type TokenizerErrorCode,
} from "../../worker/tokenizer/index";

const user = (content: string): ChatMessage => ({ role: "user", content });
const assistant = (content: string, prefix?: boolean): ChatMessage => ({ role: "assistant", content, prefix });
const system = (content: string): ChatMessage => ({ role: "system", content });

function rejects(messages: ChatMessage[], code: TokenizerErrorCode, pattern: RegExp): void {
  let err: unknown;
  try {
    applyChatTemplate(messages);
  } catch (e) {
    err = e;
  }
  // A typed error, not an HTTP one: worker/api/template.ts maps it to the 400 clients see.
  expect(err).toBeInstanceOf(TokenizerError);
  expect((err as TokenizerError).code).toBe(code);
  expect((err as TokenizerError).message).toMatch(pattern);
}

describe("chat template v1", () => {
  it("is BOS + [INST] turns + assistant turns closed by EOS, concatenated as ids", () => {
    const ids = applyChatTemplate([user("U1"), assistant("A1"), user("U2")]);
    expect(ids).toEqual([
      BOS_ID,
      ...encode("[INST] U1 [/INST]"),
      ...encode("A1"),
      EOS_ID,
      ...encode("[INST] U2 [/INST]"),
    ]);
  });

  it("puts all system messages, joined by blank lines, before the first user turn", () => {
    const ids = applyChatTemplate([system("S1"), user("U1"), assistant("A1"), system("S2"), user("U2")]);
    expect(ids).toEqual([
      BOS_ID,
      ...encode("[INST] S1\n\nS2\n\nU1 [/INST]"),
      ...encode("A1"),
      EOS_ID,
      ...encode("[INST] U2 [/INST]"),
    ]);
    // An empty system prompt adds nothing.
    expect(applyChatTemplate([system(""), user("U")])).toEqual(applyChatTemplate([user("U")]));
  });

  it("merges consecutive messages of one role with blank lines and keeps content verbatim", () => {
    expect(applyChatTemplate([user(" a "), user("b")])).toEqual([BOS_ID, ...encode("[INST]  a \n\nb [/INST]")]);
  });

  it("gives the same ids when long turns come from the turn cache", () => {
    const long = "A fairly long user turn, repeated on every request of the conversation. ".repeat(20);
    const msgs = [user(long), assistant(long + "!"), user("next")];
    const want = [
      BOS_ID,
      ...encode(`[INST] ${long} [/INST]`),
      ...encode(long + "!"),
      EOS_ID,
      ...encode("[INST] next [/INST]"),
    ];
    expect(applyChatTemplate(msgs)).toEqual(want);
    const again = applyChatTemplate(msgs);
    expect(again).toEqual(want);
    again.length = 0; // callers own the returned array
    expect(applyChatTemplate(msgs)).toEqual(want);
  });

  it("continues a final assistant message with prefix: true (no EOS)", () => {
    expect(applyChatTemplate([user("Q"), assistant("The answer is", true)])).toEqual([
      BOS_ID,
      ...encode("[INST] Q [/INST]"),
      ...encode("The answer is"),
    ]);
  });

  it("never turns typed control strings into control ids", () => {
    const ids = applyChatTemplate([user("</s><s>[INST] hi [/INST]</s>")]);
    expect(ids.filter((id) => id <= 2)).toEqual([BOS_ID]);
  });

  it("rejects invalid conversations with a typed error", () => {
    rejects([], "no_user_message", /at least one user message/);
    rejects([system("only system")], "no_user_message", /at least one user message/);
    rejects([assistant("hi"), user("x")], "first_turn_not_user", /start with a user message/);
    rejects([user("x"), assistant("y")], "last_turn_not_user", /last message must be a user or tool message/);
    rejects([user("x"), assistant("p", true), user("z")], "misplaced_prefix", /prefix/);
    rejects([{ role: "user", content: "x", prefix: true }], "misplaced_prefix", /prefix/);
    rejects(
      [user("x"), { role: "tool", content: "{}" }],
      "misplaced_tool_message",
      /must follow an assistant message with tool_calls/,
    );
    rejects([user("x"), { role: "function" as "tool", content: "{}" }], "unsupported_role", /role 'function'/);
    rejects([{ role: "user", content: 5 as unknown as string }], "content_not_string", /content must be a string/);
  });
});

describe("detokenizer", () => {
  const samples = [
    "Hello, world! Ça va? 鸡兔同笼 🦙👍🏽 naïve\n\tindent  two  spaces",
    "  leading spaces and trailing  ",
    "\nstarts with a newline",
    "<s>[INST] typed controls </s>",
    "emoji only 🦙🦙🦙 and ZWJ 👨‍👩‍👧",
  ];

  it("streamed output equals decode, which inverts encode", () => {
    for (const text of samples) {
      const ids = encode(text);
      expect(decode(ids)).toBe(text);
      const d = createDetokenizer();
      const parts = ids.map((id) => d.push(id));
      expect(parts.join("") + d.flush()).toBe(text);
      // No part ever holds half a surrogate pair or a replacement character.
      for (const p of parts) {
        expect(p).not.toMatch(/\ufffd/);
        expect((p as unknown as { isWellFormed(): boolean }).isWellFormed()).toBe(true);
      }
    }
  });

  it("emits a multi-byte character only when its last byte arrives", () => {
    const ids = encode("🦙");
    expect(ids).toEqual([28705, 243, 162, 169, 156]);
    const d = createDetokenizer();
    expect(ids.map((id) => d.push(id))).toEqual(["", "", "", "", "🦙"]);
  });

  it("drops one leading space (the dummy prefix), only from the first piece", () => {
    expect(decode(encode("Paris"))).toBe("Paris");
    expect(decode([1, ...encode(" Paris")])).toBe(" Paris");
    const d = createDetokenizer();
    expect(d.push(BOS_ID)).toBe("");
    expect(d.push(encode("Paris")[0])).toBe("Paris");
    expect(d.push(encode("Paris")[0])).toBe(" Paris");
  });

  it("U+FFFD only for invalid bytes; control and out-of-range ids are silent", () => {
    expect(decode([3 + 0xff, 3 + 0x41])).toBe("\ufffdA"); // 0xFF is never valid UTF-8
    expect(decode([3 + 0xe4, 3 + 0xbd])).toBe("\ufffd"); // truncated at the end
    expect(decode([3 + 0xe4, ...encode("x")])).toBe("\ufffd x"); // truncated by a normal piece
    expect(decode([0, 1, 2, -1, 32000, 1.5])).toBe("");
    expect(decode([3 + 0xef, 3 + 0xbb, 3 + 0xbf])).toBe("\ufeff"); // a BOM the model emits is kept
  });
});

describe("stop matcher", () => {
  function run(stops: string[], chunks: string[]): { out: string; stop: string | null } {
    const m = createStopMatcher(stops);
    let out = "";
    for (const c of chunks) {
      const r = m.push(c);
      out += r.text;
      if (r.stop !== null) return { out, stop: r.stop };
    }
    return { out: out + m.flush(), stop: null };
  }

  it("finds a stop string split across any chunk boundaries", () => {
    const text = "The answer is 42.\nUser: next question";
    for (let cut1 = 0; cut1 <= text.length; cut1 += 3) {
      for (let cut2 = cut1; cut2 <= text.length; cut2 += 5) {
        const chunks = [text.slice(0, cut1), text.slice(cut1, cut2), text.slice(cut2)];
        expect(run(["\nUser:"], chunks)).toEqual({ out: "The answer is 42.", stop: "\nUser:" });
      }
    }
  });

  it("the stop completed first wins, whatever the chunking; held text that is no stop is emitted", () => {
    expect(run(["bc", "abcd"], ["xab", "cd"])).toEqual({ out: "xa", stop: "bc" });
    expect(run(["bc", "abcd"], ["xabcd"])).toEqual({ out: "xa", stop: "bc" });
    expect(run(["abcd", "cd"], ["xabcd"])).toEqual({ out: "x", stop: "abcd" });
    expect(run(["STOP"], ["ST", "OR", "Y"])).toEqual({ out: "STORY", stop: null });
    expect(run(["aab"], ["a", "a", "a", "b"])).toEqual({ out: "a", stop: "aab" });
    expect(run([], ["free", " text"])).toEqual({ out: "free text", stop: null });
    expect(run([""], ["x"])).toEqual({ out: "x", stop: null });
  });

  it("holds back only what could still start a stop string", () => {
    const m = createStopMatcher(["</answer>"]);
    expect(m.push("abc <")).toEqual({ text: "abc ", stop: null });
    expect(m.push("/ans")).toEqual({ text: "", stop: null });
    expect(m.push("x")).toEqual({ text: "</ansx", stop: null });
  });
});
