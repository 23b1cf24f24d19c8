/**
 * A 36 s soak (npm run soak -- --minutes 0.6 --fault-every-s 9 --concurrency 4 --faults) as a test, in every `npm test`: the
 * real stack with two replicas; a backend SIGKILLed mid-stream, one SIGSTOPped past the worker's stall
 * bounds, and the worker's D1 ledger writes failing for a window; then every request id reconciled with
 * the ledger. Seeded, so the faults come in the same order; the outcome (nothing lost, nothing billed
 * twice, no hang) must hold whatever the timing. About 60 s of this machine's two cores; `npm run soak`
 * runs longer and adds the rolling restart.
 */
import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { expect, it } from "vitest";

const root = resolve(import.meta.dirname, "../..");

interface Report {
  requests: number;
  outcomes: Record<string, number>;
  fault_log: Array<{ atS: number; what: string }>;
  ledger: { checked: number; lost: number; double_billed: number; under_billed: number };
  hung: number;
  problems: string[];
}

it("36 s of load with faults: nothing lost, nothing billed twice, no hang", async () => {
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      "scripts/soak.ts",
      ...["--minutes", "0.6", "--fault-every-s", "9", "--concurrency", "4", "--faults", "--seed", "20261130", "--json"],
    ],
    {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((r) => child.on("close", r));
  const report = JSON.parse(out.trim().split("\n").at(-1)!) as Report;
  console.log(`soak: ${JSON.stringify(report)}`);
  expect(code, err.slice(-2000)).toBe(0);
  expect(report.ledger.lost, report.problems.join("\n")).toBe(0);
  expect(report.ledger.double_billed, report.problems.join("\n")).toBe(0);
  expect(report.hung).toBe(0);
  expect(report.requests).toBeGreaterThan(30);
  expect(report.ledger.checked).toBe(report.requests);
  expect(report.fault_log.some((f) => /restarted by the launcher/.test(f.what))).toBe(true);
  expect(report.fault_log.some((f) => /SIGCONT/.test(f.what))).toBe(true);
  // The D1 outage refused ledger writes, and their records still all arrived (through USAGE_QUEUE).
  const d1 = report.fault_log.map((f) => /D1 back: (\d+) ledger write/.exec(f.what)).find(Boolean);
  expect(Number(d1?.[1])).toBeGreaterThan(0);
}, 400_000);
