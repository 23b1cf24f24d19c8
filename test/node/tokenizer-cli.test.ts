/** `npm run tokenize`: JSON lines in, {"ids"} or {"error"} lines out, one per non-blank input line. */
import { spawnSync } from "node:child_process";
import { expect, it } from "vitest";
import { repoRoot, tsxBin } from "./helpers/paths";

it("tokenizes text and chat lines, reports bad lines and keeps going", () => {
  const input = [
    JSON.stringify({ text: "Hello world" }),
    "not json",
    JSON.stringify({ messages: [{ role: "user", content: "What is the capital of France?" }] }),
    "",
    JSON.stringify({ messages: [{ role: "assistant", content: "hi" }] }),
    JSON.stringify({ text: 5 }),
    JSON.stringify({ text: "<s>" }),
  ].join("\n");
  const res = spawnSync(tsxBin, ["scripts/tokenize.ts"], {
    cwd: repoRoot,
    input,
    encoding: "utf8",
  });
  expect(res.status).toBe(0);
  const out = res.stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { ids?: number[]; error?: string });
  expect(out).toHaveLength(6);
  expect(out[0]).toEqual({ ids: [22557, 1526] });
  expect(out[1].error).toMatch(/invalid JSON/);
  expect(out[2]).toEqual({
    ids: [1, 733, 16289, 28793, 1824, 349, 272, 5565, 302, 4843, 28804, 733, 28748, 16289, 28793],
  });
  expect(out[3].error).toMatch(/start with a user message/);
  expect(out[4].error).toMatch(/expected/);
  expect(out[5]).toEqual({ ids: [523, 28713, 28767] });
});
