/**
 * Usage recovery through the real stack (`npm start`: wrangler dev + a backend process): the worker is killed
 * (kill -9) mid-stream, between admit and settle. The backend cancels the orphaned generation, journals
 * its record and keeps delivering it; once the launcher has brought the worker back, the record lands in
 * the ledger as `recovered`, exactly once, with the backend's token count and the tier's price.
 * Waits on the launcher's lines and on the ledger's state, never on fixed sleeps.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { UsageRecord as Report, UsageStatusResponse } from "../../contract/usage";
import { startLauncher, TINY_STACK, type Launched } from "./helpers/launcher";
import { lineLog } from "../../scripts/lib/line-log";
import type { LedgerRecord as LedgerRow } from "../../scripts/lib/soak-ledger";
import { nextTurn, until as untilWith } from "./helpers/poll";

/** Re-checks `probe` (itself one HTTP round trip, which paces the loop) until it yields, up to `limitMs`. */
const until = <T>(probe: () => Promise<T | undefined>, limitMs: number) =>
  untilWith(probe, limitMs, "condition", nextTurn);

describe("a worker killed between admit and settle (npm start)", () => {
  let launched: Launched;
  let state: string;
  let port: number;
  let backendPort: number;
  let secrets: { apiKey: string; adminToken: string; backendToken: string };
  const { lines, push, waitFor: waitLine } = lineLog();

  /** The pid of the newest start of `what` ("worker" or "backend"), from the launcher's lines. */
  const pidOf = (what: string, p: number) => {
    const re = new RegExp(`${what} :${p} (?:ready|restarted) \\(pid (\\d+)\\)`);
    const m = lines
      .map((l) => l.match(re))
      .filter(Boolean)
      .at(-1);
    return Number(m![1]);
  };

  beforeAll(async () => {
    launched = await startLauncher({ env: TINY_STACK, statePrefix: "moe-edge-recovery-", echo: push });
    ({ state, port, backendPort } = launched);
    secrets = launched.secrets();
  }, 300_000);

  afterAll(async () => {
    await launched?.stop();
  });

  const ledger = async (requestId: string): Promise<LedgerRow[]> => {
    const res = await fetch(`http://127.0.0.1:${port}/v1/admin/usage/requests?request_id=${requestId}`, {
      headers: { authorization: `Bearer ${secrets.adminToken}` },
    });
    if (!res.ok) return [];
    return ((await res.json()) as { data: LedgerRow[] }).data;
  };

  /** Starts a long stream and reads until its first content: the worker has admitted it and not settled. */
  const openStream = async () => {
    const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${secrets.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({
        model: "mistral-tiny",
        messages: [{ role: "user", content: "Tell me a long story." }],
        max_tokens: 3000,
        stream: true,
        temperature: 0,
      }),
    });
    expect(res.status).toBe(200);
    const requestId = res.headers.get("x-request-id")!;
    const reader = res.body!.getReader();
    let seen = "";
    while (!seen.includes('"content"'))
      seen += new TextDecoder().decode((await reader.read()).value ?? new Uint8Array());
    return { requestId, reader };
  };
  const backendStatus = async (requestId: string) => {
    const r = await fetch(`http://127.0.0.1:${backendPort}/v1/usage/status`, {
      method: "POST",
      headers: { authorization: `Bearer ${secrets.backendToken}`, "content-type": "application/json" },
      body: JSON.stringify({ request_ids: [requestId] }),
    });
    const st = ((await r.json()) as UsageStatusResponse).requests[requestId];
    return st?.state === "finished" ? st.record : undefined;
  };
  const journalDir = () => join(state, "journal", String(backendPort));
  /** The record's line is in a journal segment (written: it survives a kill of the process). */
  const journaled = (id: string) =>
    readdirSync(journalDir()).some((f) => {
      try {
        return f.endsWith(".jsonl") && readFileSync(join(journalDir(), f), "utf8").includes(id);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return false; // deleted between listing and read
        throw e;
      }
    });
  const oneRecoveredRow = async (requestId: string, record: Report) => {
    const rows = await until(async () => {
      const r = await ledger(requestId);
      return r.length > 0 ? r : undefined;
    }, 90_000);
    expect(rows).toHaveLength(1);
    const tiny = { input: 140_000n, cached_input: 14_000n, output: 420_000n };
    const want =
      BigInt(record.prompt_tokens - record.cached_tokens) * tiny.input +
      BigInt(record.cached_tokens) * tiny.cached_input +
      BigInt(record.completion_tokens) * tiny.output;
    expect(rows[0]).toMatchObject({
      status: "recovered",
      prompt_tokens: record.prompt_tokens,
      cached_tokens: record.cached_tokens,
      completion_tokens: record.completion_tokens,
      cost_units: want.toString(),
    });
    expect(record.completion_tokens).toBeGreaterThan(0);
    return want;
  };

  it("the backend's record is billed `recovered` exactly once, with the backend's count", async () => {
    const { requestId, reader } = await openStream();
    // The worker dies mid-stream: no settle can run.
    const from = lines.length;
    process.kill(pidOf("worker", port), "SIGKILL");
    await reader.read().catch(() => undefined);
    await waitLine(new RegExp(`npm start: worker :${port} exited \\(SIGKILL\\)`), from);
    await waitLine(new RegExp(`npm start: worker :${port} restarted \\(pid \\d+\\)`), from);

    // The backend finished the orphan (cancelled when its caller vanished) and knows its count.
    const record = await until(() => backendStatus(requestId), 60_000);
    const want = await oneRecoveredRow(requestId, record);

    // The key's budget counts it, once, and holds no reservation for it.
    const key = await fetch(`http://127.0.0.1:${port}/v1/key`, {
      headers: { authorization: `Bearer ${secrets.apiKey}` },
    });
    const k = (await key.json()) as { spent_micros: number; reserved_micros: number };
    expect(k.reserved_micros).toBe(0);
    expect(k.spent_micros).toBe(Number((want + 999_999n) / 1_000_000n));
  });

  it("the worker and then the backend killed before delivery: the journal replays after the restart, billed once", async () => {
    const { requestId, reader } = await openStream();
    const from = lines.length;
    process.kill(pidOf("worker", port), "SIGKILL");
    await reader.read().catch(() => undefined);
    // The backend finished it; its delivery fails while the worker is down. Then the backend dies too, but
    // only once the record is in its journal: /v1/usage/status says "finished" as soon as the engine ends,
    // before the journal's write and fsync (the worker merges the record it answers, so that is no loss),
    // and a kill in that gap, wide on a loaded disk, would take with it the record this test replays.
    const record = await until(() => backendStatus(requestId), 60_000);
    await until(async () => (journaled(record.id) ? true : undefined), 30_000);
    process.kill(pidOf("backend", backendPort), "SIGKILL");
    await waitLine(new RegExp(`npm start: backend :${backendPort} restarted \\(pid \\d+\\)`), from);
    await waitLine(new RegExp(`npm start: worker :${port} restarted \\(pid \\d+\\)`), from);
    await oneRecoveredRow(requestId, record);
    // Delivered by the replay (the usual case: wrangler dev takes seconds to come back) or, if the worker won
    // the race, by the first backend before its kill; either way one row, and the record is acknowledged in
    // the journal, so no backend start sends it again.
    // (An acknowledged closed segment is deleted, so "acknowledged" = every segment holding it lists it as acked.)
    // The backend may delete a segment between the listing and a read: that snapshot is void, look again.
    await until(async () => {
      const dir = journalDir();
      const files = readdirSync(dir);
      try {
        const holding = files.filter(
          (f) => f.endsWith(".jsonl") && readFileSync(join(dir, f), "utf8").includes(record.id),
        );
        const acked = (seg: string) => {
          const acks = join(dir, seg.replace(/\.jsonl$/, ".acks"));
          return files.includes(seg.replace(/\.jsonl$/, ".acks")) && readFileSync(acks, "utf8").includes(record.id);
        };
        return holding.every(acked) ? true : undefined;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw e;
      }
    }, 30_000);
    expect(await ledger(requestId)).toHaveLength(1);
  });
});
