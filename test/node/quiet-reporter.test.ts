/**
 * `npm test`'s reporter (test/quiet-reporter.ts) on a fixture run of vitest: the worker's JSON log lines
 * of a passing test are held back, a failing test's are printed, other lines always are, and
 * LOG_REQUESTS=1 (vitest.config.ts) shows everything.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "../..");
const dir = mkdtempSync(join(tmpdir(), "quiet-reporter-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

writeFileSync(
  join(dir, "fixture.test.ts"),
  `import { expect, it } from "vitest";
it("passes", () => { console.log('{"level":"info","msg":"request","request_id":"req_PASSING"}'); console.log("figure: 42"); });
it("fails", () => { console.log('{"level":"info","msg":"request","request_id":"req_FAILING"}'); expect(1).toBe(2); });
`,
);

function vitest(reporter: string): string {
  writeFileSync(
    join(dir, "vitest.config.mjs"),
    `export default { test: { include: ["fixture.test.ts"], reporters: [${JSON.stringify(reporter)}] } };`,
  );
  const r = spawnSync(
    resolve(root, "node_modules/.bin/vitest"),
    ["run", "--root", dir, "--config", join(dir, "vitest.config.mjs")],
    { cwd: dir, encoding: "utf8", timeout: 120_000 },
  );
  expect(r.status).toBe(1); // the fixture's failing test
  return r.stdout + r.stderr;
}

it("holds a passing test's request logs back, prints a failing test's, and every other line", () => {
  const out = vitest(resolve(root, "test/quiet-reporter.ts"));
  expect(out).not.toContain("req_PASSING");
  expect(out).toContain("req_FAILING");
  expect(out).toContain("figure: 42");
  expect(out).toMatch(/1 failed/);
});

it("the default reporter, which LOG_REQUESTS=1 selects, prints them all", () => {
  const out = vitest("default");
  expect(out).toContain("req_PASSING");
  expect(out).toContain("req_FAILING");
});
