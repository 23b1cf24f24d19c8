/**
 * Exactness against SentencePiece: every document of golden.jsonl (ids without BOS) and every conversation
 * of chat_golden.jsonl (official ids, BOS included). Read in place from ../shared; skipped when absent.
 */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { applyChatTemplate, decode, encode, type ChatMessage } from "../../worker/tokenizer/index";

const dir = resolve(import.meta.dirname, "../../../shared/data/tokenizer");
const present = existsSync(resolve(dir, "golden.jsonl")) && existsSync(resolve(dir, "chat_golden.jsonl"));
if (!present) console.warn(`tokenizer-golden: SKIPPED, reference data not found at ${dir}`);

function readJsonl<T>(name: string): T[] {
  return readFileSync(resolve(dir, name), "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as T);
}

/** First differing position with a little context, for a readable failure. */
function firstMismatch(got: number[], want: number[]): string | null {
  let i = 0;
  while (i < got.length && i < want.length && got[i] === want[i]) i++;
  if (i === got.length && i === want.length) return null;
  const ctx = (a: number[]) => JSON.stringify(a.slice(Math.max(0, i - 4), i + 6));
  return `at id #${i} (lengths ${got.length} vs ${want.length}): got ${ctx(got)} want ${ctx(want)}; text around: ${JSON.stringify(decode(want.slice(Math.max(0, i - 8), i + 8)))}`;
}

describe.skipIf(!present)("tokenizer golden (SentencePiece ids)", () => {
  it("encodes every golden document exactly", () => {
    const docs = readJsonl<{ cat: string; text: string; ids: number[] }>("golden.jsonl");
    expect(docs.length).toBe(519);
    const failures: string[] = [];
    docs.forEach((d, n) => {
      const m = firstMismatch(encode(d.text), d.ids);
      if (m) failures.push(`doc ${n} (${d.cat}) ${m}`);
    });
    expect(failures.slice(0, 3), `${failures.length} mismatching documents`).toEqual([]);
  });

  it("decodes every golden document back to its text", () => {
    // SentencePiece is lossless here (no normalisation); decode drops only the dummy prefix.
    const docs = readJsonl<{ text: string; ids: number[] }>("golden.jsonl");
    const wellFormed = (t: string) => (t as unknown as { toWellFormed(): string }).toWellFormed();
    const bad = docs.filter((d) => decode(d.ids) !== wellFormed(d.text));
    expect(bad.map((d) => d.text.slice(0, 60))).toEqual([]);
  });

  it("builds every golden chat prompt exactly", () => {
    const chats = readJsonl<{ messages: ChatMessage[]; ids: number[] }>("chat_golden.jsonl");
    expect(chats.length).toBeGreaterThan(0);
    const failures: string[] = [];
    chats.forEach((c, n) => {
      const m = firstMismatch(applyChatTemplate(c.messages), c.ids);
      if (m) failures.push(`chat ${n} ${m}`);
    });
    expect(failures).toEqual([]);
  });
});
