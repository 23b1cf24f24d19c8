/** Shared by the engine/backend tests: locate (or build) the dev models. */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import type { GenerateEvent } from "../../contract/wire";
import type { EngineOutput } from "../../gpu-backend/engine/engine";
import { renderOutput } from "../../gpu-backend/server/render";
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

/** The engine's outputs as the wire events the server renders (tests read tokens and done events). */
export const onEvents =
  (f: (ev: GenerateEvent) => void) =>
  (out: EngineOutput): void => {
    for (const ev of renderOutput(out)) f(ev);
  };
