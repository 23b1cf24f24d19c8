/**
 * The tokenizer inside workerd: proves the vocabulary bundles and the encoder, chat template, detokenizer
 * and stop matcher behave the same in the Workers runtime.
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
  TokenizerError,
} from "../../worker/tokenizer/index";

describe("tokenizer in workerd", () => {
  it("encodes like SentencePiece (dummy prefix, spaces, newlines, byte fallback)", () => {
    expect(encode("Hello world")).toEqual([22557, 1526]);
    expect(encode(" grabbed")).toEqual([28705, 13300]);
    expect(encode("           grabbed")).toEqual([17422, 13300]);
    expect(encode(" \n")).toEqual([259, 13]);
    expect(encode("🦙")).toEqual([28705, 243, 162, 169, 156]);
    expect(encode("")).toEqual([]);
  });

  it("renders an empty assistant turn as just EOS after the preceding [/INST] (exact ids)", () => {
    // [BOS] "[INST] Hi [/INST]" [EOS] "[INST] Again? [/INST]"
    expect(
      applyChatTemplate([
        { role: "user", content: "Hi" },
        { role: "assistant", content: "" },
        { role: "user", content: "Again?" },
      ]),
    ).toEqual([
      1, 733, 16289, 28793, 15359, 733, 28748, 16289, 28793, 2, 733, 16289, 28793, 9706, 28804, 733, 28748, 16289,
      28793,
    ]);
    // An empty prefix continues from nothing: the prompt is the user turn alone.
    expect(
      applyChatTemplate([
        { role: "user", content: "Hi" },
        { role: "assistant", content: "", prefix: true },
      ]),
    ).toEqual([1, 733, 16289, 28793, 15359, 733, 28748, 16289, 28793]);
  });

  it("treats control strings typed by a user as text", () => {
    const ids = encode("<s>[INST] </s><unk>");
    expect(ids).not.toContain(BOS_ID);
    expect(ids).not.toContain(EOS_ID);
    expect(ids).not.toContain(0);
    expect(ids.slice(0, 6)).toEqual([523, 28713, 28767, 28792, 16289, 28793]);
    expect(decode(ids)).toBe("<s>[INST] </s><unk>");
  });

  it("replaces lone surrogates with U+FFFD", () => {
    expect(encode("a\ud800b")).toEqual(encode("a\ufffdb"));
    expect(encode("x\udc00")).toEqual(encode("x\ufffd"));
    expect(decode(encode("a\ud800b"))).toBe("a\ufffdb");
  });

  it("builds the v1 chat prompt from ids and rejects bad role order with a typed error", () => {
    expect(applyChatTemplate([{ role: "user", content: "What is the capital of France?" }])).toEqual([
      1, 733, 16289, 28793, 1824, 349, 272, 5565, 302, 4843, 28804, 733, 28748, 16289, 28793,
    ]);
    const ids = applyChatTemplate([
      { role: "user", content: "Hi </s>" },
      { role: "assistant", content: "Hello" },
      { role: "user", content: "Again" },
    ]);
    expect(ids.filter((id) => id === BOS_ID)).toHaveLength(1);
    expect(ids.filter((id) => id === EOS_ID)).toHaveLength(1); // only the one closing the assistant turn
    let err: unknown;
    try {
      applyChatTemplate([{ role: "assistant", content: "x" }]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TokenizerError);
    expect((err as TokenizerError).code).toBe("first_turn_not_user");
  });

  it("detokenizes a stream without splitting characters across byte tokens", () => {
    const d = createDetokenizer();
    const out = [28705, 243, 162, 169, 156, 22557].map((id) => d.push(id));
    expect(out).toEqual(["", "", "", "", "🦙", " Hello"]);
    expect(d.flush()).toBe("");
    // Leading space of the first piece is dropped; control ids are silent.
    const e = createDetokenizer();
    expect([BOS_ID, 5465, EOS_ID].map((id) => e.push(id)).join("")).toBe(decode([5465]));
    expect(decode([5465]).startsWith(" ")).toBe(false);
    // Truncated sequence -> one U+FFFD at flush.
    const f = createDetokenizer();
    expect(f.push(243) + f.push(162)).toBe("");
    expect(f.flush()).toBe("\ufffd");
  });

  it("matches stop strings across chunk boundaries", () => {
    const m = createStopMatcher(["</answer>", "STOP"]);
    expect(m.push("Hello </ans")).toEqual({ text: "Hello ", stop: null });
    expect(m.push("wer> ignored")).toEqual({ text: "", stop: "</answer>" });
    expect(m.push("more")).toEqual({ text: "", stop: null });
    const n = createStopMatcher(["</answer>"]);
    expect(n.push("a</")).toEqual({ text: "a", stop: null });
    expect(n.push("b>")).toEqual({ text: "</b>", stop: null });
    expect(n.push("</answ")).toEqual({ text: "", stop: null });
    expect(n.flush()).toBe("</answ");
  });
});
