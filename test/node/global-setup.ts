/**
 * Node project global setup: build the dev models once (cached: a no-op when they exist), so every
 * test that needs a real graph finds one on a fresh clone, whatever order the files run in.
 */
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";

export default function setup() {
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
}
