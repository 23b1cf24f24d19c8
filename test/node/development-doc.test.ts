/** docs/development.md traces a request file by file: every path it names must exist. */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "./helpers/paths";

const doc = readFileSync(path.join(repoRoot, "docs/development.md"), "utf8");
/** `code` spans that are repository paths: a folder and a file with an extension. */
const paths = [...doc.matchAll(/`([\w.-]+(?:\/[\w.-]+)+\.[a-z]+)`/g)].map((m) => m[1]!);

describe("docs/development.md", () => {
  it("names files", () => expect(paths.length).toBeGreaterThan(30));
  it.each(paths.map((p) => [p]))("%s exists", (p) => expect(existsSync(path.join(repoRoot, p))).toBe(true));
});
