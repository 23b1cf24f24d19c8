/**
 * The console bundle served by the worker (worker/console/assets.generated.ts) is the build of the
 * client sources as committed; the client typechecks strictly against the DOM types; the API's response
 * types reach it from contract/ as types only (no zod in the bundle); and no client source uses an HTML
 * sink (the CSP's Trusted Types would throw at run time anyway).
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { CLIENT_DIR, consoleAssetsModule, consoleScript, GENERATED } from "../../scripts/lib/console-assets";

const root = resolve(import.meta.dirname, "../..");
const sources = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );

describe("console bundle", () => {
  it("assets.generated.ts is up to date with worker/console/client (else: npm run build:console)", async () => {
    const fresh = await consoleAssetsModule();
    expect(
      readFileSync(GENERATED, "utf8") === fresh,
      "worker/console/assets.generated.ts is stale: run npm run build:console",
    ).toBe(true);
  });

  it("the client typechecks (strict, DOM types)", () => {
    const r = spawnSync(resolve(root, "node_modules/.bin/tsc"), ["--noEmit", "-p", join(CLIENT_DIR, "tsconfig.json")], {
      encoding: "utf8",
    });
    expect(r.stdout + r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  it("the response shapes come in as types only: no zod and no contract/ module in the bundle", async () => {
    const { inputs } = await consoleScript();
    expect(inputs.some((f) => f.includes("client/main.ts"))).toBe(true);
    expect(inputs.filter((f) => /(^|\/)(node_modules\/zod|contract)\//.test(f))).toEqual([]);
  });

  it("no client source writes HTML: text nodes only", () => {
    for (const file of sources(CLIENT_DIR)) {
      const code = readFileSync(file, "utf8");
      expect(code, file).not.toMatch(
        /\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function\(/,
      );
    }
  });
});
