/**
 * `npm run build:console [-- --check]`: rebuilds worker/console/assets.generated.ts from the console's
 * sources (offline). With --check it only reports whether the committed file is up to date (exit 1 if not).
 */
import { parseCli } from "./lib/cli";
import { consoleAssetsModule, GENERATED } from "./lib/console-assets";
import { writeOrCheck } from "./lib/generated-file";

const { values } = parseCli("build:console", process.argv.slice(2), {
  usage: `usage: npm run build:console [-- --check]
Rebuilds worker/console/assets.generated.ts from the console's sources; --check only reports whether it is up to date (exit 1 if not).`,
  options: { check: { type: "boolean" } },
});
writeOrCheck(GENERATED, await consoleAssetsModule(), values.check === true, "npm run build:console");
