/**
 * `npm run build:console [-- --check]`: rebuilds worker/console/assets.generated.ts from the console's
 * sources (offline). With --check it only reports whether the committed file is up to date (exit 1 if not).
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { relative } from "node:path";
import { parseCli } from "./lib/cli";
import { consoleAssetsModule, GENERATED } from "./lib/console-assets";

const { values } = parseCli("build:console", process.argv.slice(2), {
  usage: `usage: npm run build:console [-- --check]
Rebuilds worker/console/assets.generated.ts from the console's sources; --check only reports whether it is up to date (exit 1 if not).`,
  options: { check: { type: "boolean" } },
});
const next = await consoleAssetsModule();
const current = existsSync(GENERATED) ? readFileSync(GENERATED, "utf8") : "";
const name = relative(process.cwd(), GENERATED);
if (values.check) {
  if (next !== current) {
    console.error(`${name} is stale: run npm run build:console`);
    process.exit(1);
  }
  console.log(`${name} is up to date`);
} else if (next === current) {
  console.log(`${name} is up to date (${Math.round(next.length / 1024)} KiB)`);
} else {
  writeFileSync(GENERATED, next);
  console.log(`wrote ${name} (${Math.round(next.length / 1024)} KiB)`);
}
