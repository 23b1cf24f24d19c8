/**
 * The mutation list (scripts/mutations.ts) names exact source text. When the code it targets changes, a
 * mutation would silently stop applying ("stale" in `npm run mutate`): this keeps the list honest in `npm test`.
 */
import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { MUTATIONS } from "../../scripts/mutations";

describe("mutation list", () => {
  it.each(MUTATIONS.map((m) => [m.id, m] as const))("%s: every find occurs exactly once; its tests exist", (_id, m) => {
    const text = readFileSync(m.file, "utf8");
    for (const e of m.edits) expect(text.split(e.find).length - 1, e.find.slice(0, 80)).toBe(1);
    for (const t of m.tests) expect(existsSync(t), t).toBe(true);
  });
});
