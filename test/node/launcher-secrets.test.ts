/**
 * The dev launcher hands the worker its secrets through a 0600 env file (`--env-file`),
 * never as `wrangler dev --var` arguments, which any local user can read in /proc/<pid>/cmdline.
 * A source check: the launcher's argv list is code, and running `npm start` here would take minutes.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot as root } from "./helpers/paths";

describe("dev launcher secrets", () => {
  it("no secret is passed as a --var argument; they go through an env file written 0600", () => {
    const src = readFileSync(resolve(root, "scripts/start.ts"), "utf8");
    for (const name of ["ADMIN_TOKEN", "BACKEND_TOKEN", "CACHE_KEY_SECRET", "METRICS_TOKEN"]) {
      expect(src, name).not.toMatch(new RegExp(`"--var",\\s*\`${name}:`));
    }
    expect(src).toMatch(/"--env-file",\s*workerVars/);
    expect(src).toMatch(/writeFileSync\(\s*workerVars,[\s\S]*?mode: 0o600/);
  });
});
