/** Where the tests find the repository and its tools. */
import { resolve } from "node:path";

export const repoRoot = resolve(import.meta.dirname, "../../..");
/** The tsx CLI from node_modules (as `npm start` runs scripts/start.ts). */
export const tsxBin = resolve(repoRoot, "node_modules/.bin/tsx");
