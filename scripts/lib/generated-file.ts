/**
 * The build:* scripts' last step for a committed generated file: write it when it changed, or with --check
 * only say whether it is up to date (exit 1 when it is stale).
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { relative } from "node:path";

export function writeOrCheck(file: string, next: string, check: boolean, rebuild: string): void {
  const current = existsSync(file) ? readFileSync(file, "utf8") : "";
  const name = relative(process.cwd(), file);
  if (check) {
    if (next !== current) {
      console.error(`${name} is stale: run ${rebuild}`);
      process.exit(1);
    }
    console.log(`${name} is up to date`);
  } else if (next === current) {
    console.log(`${name} is up to date (${Math.round(next.length / 1024)} KiB)`);
  } else {
    writeFileSync(file, next);
    console.log(`wrote ${name} (${Math.round(next.length / 1024)} KiB)`);
  }
}
