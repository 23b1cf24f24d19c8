/** Shared by the engine/backend tests: locate (or build) the dev models. */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { repoRoot } from "./helpers/paths";

export { repoRoot };

export function devModel(name: "tiny" | "small" | "medium"): string {
  const dir = path.join(repoRoot, "models/dev", name);
  if (!existsSync(path.join(dir, "model.json"))) {
    const r = spawnSync("npm", ["run", "models"], { cwd: repoRoot, stdio: "inherit" });
    if (r.status !== 0) throw new Error("npm run models failed");
  }
  return dir;
}
