/**
 * npm run mutate [-- --only id1,id2] [--list]
 * A mutation check we keep: applies known-dangerous bugs to billing, limiter, tokenizer, graph, sampler,
 * engine and cancellation code, one at a time, runs the tests that should catch each, restores the file,
 * and prints a table: caught (some test failed) or SURVIVED (all passed). A mutation whose text is no
 * longer in the file is reported "stale": update the list when the code moves.
 * It edits files in place (and always restores them, also on Ctrl-C): do not edit the tree while it runs.
 */
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseCli } from "./lib/cli";
import { MUTATIONS, type Mutation } from "./mutations";

const root = path.resolve(import.meta.dirname, "..");

const { values } = parseCli("mutate", process.argv.slice(2), {
  usage: "usage: npm run mutate [-- --only id1,id2] [--list]",
  options: { only: { type: "string" }, list: { type: "boolean", default: false } },
});
const only = values.only ? new Set(values.only.split(",")) : null;
const chosen = MUTATIONS.filter((m) => !only || only.has(m.id));
if (values.list) {
  for (const m of chosen) console.log(`${m.id.padEnd(28)} ${m.file}: ${m.why}`);
  process.exit(0);
}

let restore: (() => void) | null = null;
process.on("SIGINT", () => {
  restore?.();
  process.exit(130);
});

type Verdict = "caught" | "SURVIVED" | "stale";
function run(m: Mutation): { verdict: Verdict; seconds: number } {
  const file = path.join(root, m.file);
  const original = readFileSync(file, "utf8");
  if (m.edits.some((e) => original.split(e.find).length !== 2)) return { verdict: "stale", seconds: 0 };
  restore = () => writeFileSync(file, original);
  writeFileSync(
    file,
    m.edits.reduce((text, e) => text.replace(e.find, e.replace), original),
  );
  const t0 = performance.now();
  try {
    const r = spawnSync(path.join(root, "node_modules/.bin/vitest"), ["run", ...m.tests], {
      cwd: root,
      encoding: "utf8",
      env: { ...process.env, CI: "1" },
      maxBuffer: 1 << 28,
    });
    return { verdict: r.status === 0 ? "SURVIVED" : "caught", seconds: (performance.now() - t0) / 1000 };
  } finally {
    restore();
    restore = null;
  }
}

const rows: string[] = [];
let notCaught = 0;
for (const m of chosen) {
  const { verdict, seconds } = run(m);
  if (verdict !== "caught") notCaught++;
  const line = `| ${m.id} | ${m.area} | ${m.why} | ${m.tests.map((t) => path.basename(t)).join(", ")} | ${verdict} | ${seconds.toFixed(0)} s |`;
  console.log(line);
  rows.push(line);
}
console.log(
  ["", "| mutation | area | the bug | tests run | result | time |", "|---|---|---|---|---|---|", ...rows].join("\n"),
);
// By verdict: a description may contain the word "stale" (admin-patch-whole-row's does).
process.exit(notCaught > 0 ? 1 : 0);
