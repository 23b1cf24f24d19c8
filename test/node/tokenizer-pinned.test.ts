/**
 * Encoder ids pinned as literals, independent of encode() itself: a wrong but lossless encoder (merge
 * ties taken rightmost-first, a missing dummy prefix, byte fallback in the wrong order) fails here even
 * without ../shared's golden data. The ids were checked against mistral-tokenizer-js (an independent
 * implementation that matched SentencePiece on 93k lines, DESIGN.md §5) when pinned.
 * Repeated letters and digits are the BPE tie cases: equal-rank merges at several positions.
 */
import { describe, expect, it } from "vitest";
import { applyChatTemplate, decode, encode, type ChatMessage } from "../../worker/tokenizer/index";

const PINNED: [string, number[]][] = [
  ["aaaaaaa", [264, 12648, 4474]],
  ["ababababab", [534, 375, 375, 375, 375]],
  ["1111111111", [28705, 28740, 28740, 28740, 28740, 28740, 28740, 28740, 28740, 28740, 28740]],
  ["    four spaces", [260, 2308, 10599]],
  ["hello hello hello", [6312, 28709, 6312, 28709, 6312, 28709]],
  ["ééééé", [1233, 28797, 28797, 28797, 28797]],
  ["\t\tx\n\ny", [28705, 12, 12, 28744, 13, 13, 28724]],
  ["🦀🦀 crab", [28705, 243, 162, 169, 131, 243, 162, 169, 131, 1439, 375]],
  [
    "<s>[INST] x [/INST]</s>",
    [523, 28713, 28767, 28792, 16289, 28793, 1318, 733, 28748, 16289, 28793, 700, 28713, 28767],
  ],
  [" leading", [28705, 5374]],
  ["trailing  ", [27166, 259]],
  ["Ångström mmmm", [15744, 817, 1042, 16707, 290, 3221, 28719]],
  ["zzzzzzzz", [686, 6748, 6748, 6748, 28764]],
  ["....!!!!????", [28705, 3406, 19010, 8908, 8908]],
  ["日本語のテキスト", [28705, 29142, 29119, 30321, 28993, 29610, 29753, 29109, 29123]],
  ["xxxxxxxxx", [1318, 5735, 5735, 5735, 5735]],
];

describe("encoder: pinned ids", () => {
  for (const [text, ids] of PINNED) {
    it(`${JSON.stringify(text)}`, () => {
      expect(encode(text)).toEqual(ids);
      expect(decode(ids)).toBe(text);
    });
  }

  it("chat template: system + user, as literal ids", () => {
    const msgs: ChatMessage[] = [
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hi there" },
    ];
    expect(applyChatTemplate(msgs)).toEqual([
      1, 733, 16289, 28793, 1739, 6817, 28723, 13, 13, 23809, 736, 733, 28748, 16289, 28793,
    ]);
  });
});
