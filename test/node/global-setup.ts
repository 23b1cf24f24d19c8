/**
 * Node project global setup: build the dev models once (cached: a no-op when they exist), so every
 * test that needs a real graph finds one on a fresh clone, whatever order the files run in; and a
 * directory for the run's shared stack (helpers/shared-stack.ts), stopped at teardown if a file started it.
 * Its launcher log outlives the directory as `$TMPDIR/moe-edge-shared-stack-last.log`: a failure in a file that
 * shares the stack may need what the worker or a backend printed meanwhile.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { TestProject } from "vitest/node";
import { stopSharedStack } from "./helpers/shared-stack";

declare module "vitest" {
  export interface ProvidedContext {
    sharedStackDir: string;
  }
}

export default function setup(project: TestProject) {
  const root = resolve(import.meta.dirname, "../..");
  const r = spawnSync(
    resolve(root, "node_modules/.bin/tsx"),
    ["scripts/dev-models.ts", "--preset", "tiny,small,medium"],
    {
      cwd: root,
      stdio: "inherit",
    },
  );
  if (r.status !== 0) throw new Error("building the dev models failed (npm run models)");
  const dir = mkdtempSync(join(tmpdir(), "moe-edge-shared-stack-"));
  project.provide("sharedStackDir", dir);
  return async () => {
    await stopSharedStack(dir);
    const log = join(dir, "launcher.log");
    if (existsSync(log)) copyFileSync(log, join(tmpdir(), "moe-edge-shared-stack-last.log"));
    rmSync(dir, { recursive: true, force: true });
  };
}
