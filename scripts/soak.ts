/**
 * `npm run soak -- --minutes N --concurrency C [--faults]`: load (and faults) against the real local stack
 * (npm start with two backend replicas, wrangler dev, D1), then the ledger reconciliation
 * (scripts/lib/soak-ledger.ts). Exits 1 on a lost, double-billed or hung request.
 */
import { writeFileSync } from "node:fs";
import { mulberry32 } from "../gpu-backend/engine/rng";
import { parseCli, runCli, UsageError } from "./lib/cli";
import { groupRssMb, rssMb, startLocalStack, type LocalStack } from "./lib/local-stack";
import { soakRequest, type ClientKind, type Seen } from "./lib/soak-client";
import { histogramBuckets, histogramQuantile } from "./lib/prom-text";
import { auditLines, quantile, reconcile, type LedgerRecord } from "./lib/soak-ledger";

const USAGE = `usage: npm run soak -- [--minutes 2] [--concurrency 4] [--faults] [--seed N] [--stall-ms 2000]
                      [--stop-ms 6000] [--d1-fail-ms 5000] [--fault-every-s 15] [--json]

Runs clients against the real local stack (npm start, two backend replicas, tiny model) for --minutes:
normal streams, clients that abort mid-stream, slow readers and unstreamed requests. The worker runs with
STALL_TIMEOUT_MS = --stall-ms and FIRST_TOKEN_TIMEOUT_MS = 2 x --stall-ms. With --faults, at seeded random
times, in turn: SIGKILL a backend while streams are running (the launcher restarts it); SIGSTOP a backend
for --stop-ms (longer than both worker bounds), then SIGCONT; make the worker's D1 ledger writes fail for
--d1-fail-ms (FAULTS=1, /internal/faults), so records reach the ledger through USAGE_QUEUE; a rolling
restart (SIGTERM each replica in turn: it drains, the launcher restarts it, it registers again); and
during the SIGSTOP, a reset of the replica registry (its Durable Object forgets every replica; heartbeats
rebuild it). Faults come about every --fault-every-s seconds (the first after a third to two thirds of
it, then every 0.8-1.2 of it, each after the one before has ended); the rolling restart comes fourth, so
at the default spacing a run needs 2 minutes (the default) to include it. Then reconciles every
request id the clients saw against the ledger. Prints outcomes, p50/p99 TTFT and inter-token latency,
RSS (workerd's at start and end); exits 1 on a lost, double-billed or hung request.`;

interface Args {
  minutes: number;
  concurrency: number;
  faults: boolean;
  seed: number;
  stallMs: number;
  stopMs: number;
  d1FailMs: number;
  faultEveryS: number;
  json: boolean;
}

function parse(argv: string[]): Args {
  const { values } = parseCli("soak", argv, {
    usage: USAGE,
    options: {
      minutes: { type: "string" },
      concurrency: { type: "string" },
      faults: { type: "boolean" },
      seed: { type: "string" },
      "stall-ms": { type: "string" },
      "stop-ms": { type: "string" },
      "d1-fail-ms": { type: "string" },
      "fault-every-s": { type: "string" },
      json: { type: "boolean" },
    },
  });
  const num = (flag: string, v: string | undefined, def: number, ok: (n: number) => boolean) => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!ok(n)) throw new UsageError(`--${flag} got "${v}" (see --help)`);
    return n;
  };
  return {
    minutes: num("minutes", values.minutes, 2, (n) => n > 0 && n <= 600),
    concurrency: num("concurrency", values.concurrency, 4, (n) => Number.isInteger(n) && n >= 1 && n <= 256),
    faults: values.faults ?? false,
    seed: num("seed", values.seed, 20261130, Number.isInteger),
    stallMs: num("stall-ms", values["stall-ms"], 2000, (n) => Number.isInteger(n) && n >= 100),
    stopMs: num("stop-ms", values["stop-ms"], 6000, (n) => Number.isInteger(n) && n >= 100),
    d1FailMs: num("d1-fail-ms", values["d1-fail-ms"], 5000, (n) => Number.isInteger(n) && n >= 100 && n <= 600_000),
    faultEveryS: num("fault-every-s", values["fault-every-s"], 15, (n) => n >= 5 && n <= 3600),
    json: values.json ?? false,
  };
}

const WORDS = "the sea lighthouse keeper storm ship night light rope harbour gull tide wave stone lamp oil".split(" ");
const PREAMBLE =
  "You keep an old lighthouse on a rocky northern coast. Answer questions about the sea in short plain sentences.";

async function admin(stack: LocalStack, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${stack.base}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { authorization: `Bearer ${stack.adminToken}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}

interface Fault {
  atS: number;
  what: string;
}

/**
 * Seeded fault times: the first a third to two thirds of --fault-every-s in, then one every 0.8-1.2 of it
 * (5-10 s, then 12-18 s, by default), in turn SIGKILL, SIGSTOP (with a registry reset), D1 outage, rolling
 * restart (at the default spacing, from --minutes 2 on: a 1-minute run ends before it).
 */
async function runFaults(
  stack: LocalStack,
  a: Args,
  rnd: () => number,
  deadline: number,
  streaming: () => number,
  log: Fault[],
  t0: number,
): Promise<void> {
  const kinds = ["kill", "stop", "d1", "roll"] as const;
  let turn = 0;
  const every = a.faultEveryS * 1000;
  for (let at = t0 + (1 + rnd()) * (every / 3); at < deadline - 8000; at += (0.8 + rnd() * 0.4) * every) {
    await new Promise((r) => setTimeout(r, Math.max(0, at - Date.now())));
    const port = stack.backendPorts[Math.floor(rnd() * stack.backendPorts.length)]!;
    const pid = stack.backendPid(port);
    const s = () => ((Date.now() - t0) / 1000).toFixed(1);
    const kind = kinds[turn++ % kinds.length]!;
    if (kind === "kill") {
      // Mid-stream: wait (briefly) until clients have streams running.
      for (let i = 0; i < 50 && streaming() < 2; i++) await new Promise((r) => setTimeout(r, 20));
      const from = stack.lines.length;
      process.kill(pid, "SIGKILL");
      log.push({
        atS: Number(s()),
        what: `SIGKILL backend :${port} (pid ${pid}) with ${streaming()} stream(s) running`,
      });
      await stack.waitFor(new RegExp(`backend :${port} restarted \\(pid \\d+\\)`), from);
      log.push({ atS: Number(s()), what: `backend :${port} restarted by the launcher` });
    } else if (kind === "stop") {
      process.kill(pid, "SIGSTOP");
      log.push({ atS: Number(s()), what: `SIGSTOP backend :${port} (pid ${pid}) for ${a.stopMs} ms` });
      // Meanwhile the registry loses its state, as a Durable Object reset would: the running replica's next
      // heartbeat rebuilds it, the stopped one's after SIGCONT (TIERS is the seed until then).
      await admin(stack, "/internal/faults/registry-reset", {});
      log.push({ atS: Number(s()), what: "replica registry reset" });
      await new Promise((r) => setTimeout(r, a.stopMs));
      process.kill(pid, "SIGCONT");
      log.push({ atS: Number(s()), what: `SIGCONT backend :${port}` });
    } else if (kind === "roll") {
      for (const p of stack.backendPorts) {
        const from = stack.lines.length;
        process.kill(stack.backendPid(p), "SIGTERM");
        log.push({
          atS: Number(s()),
          what: `SIGTERM backend :${p} (rolling restart) with ${streaming()} stream(s) running`,
        });
        await stack.waitFor(new RegExp(`backend :${p} restarted \\(pid \\d+\\)`), from);
        await stack.waitFor(/backend: registered at /, from);
        log.push({ atS: Number(s()), what: `backend :${p} restarted and registered` });
      }
    } else {
      const before = (await faultStatus(stack)).d1.refused_writes;
      await admin(stack, "/internal/faults/d1", { fail_ms: a.d1FailMs });
      log.push({ atS: Number(s()), what: `D1 ledger writes failing for ${a.d1FailMs} ms` });
      await new Promise((r) => setTimeout(r, a.d1FailMs));
      const refused = (await faultStatus(stack)).d1.refused_writes - before;
      log.push({
        atS: Number(s()),
        what: `D1 back: ${refused} ledger write(s) refused meanwhile, replayed through USAGE_QUEUE`,
      });
    }
  }
}

const faultStatus = (stack: LocalStack) =>
  admin(stack, "/internal/faults") as Promise<{ d1: { failing_ms: number; refused_writes: number } }>;

/** Ledger records by request id; polls until every id has one (settles run after the response) or 60 s pass. */
async function ledger(stack: LocalStack, ids: string[]): Promise<Map<string, LedgerRecord[]>> {
  const out = new Map<string, LedgerRecord[]>();
  const end = Date.now() + 60_000;
  let pending = [...ids];
  while (pending.length > 0) {
    for (let i = 0; i < pending.length; i += 8) {
      await Promise.all(
        pending.slice(i, i + 8).map(async (id) => {
          const j = (await admin(stack, `/v1/admin/usage/requests?request_id=${encodeURIComponent(id)}&limit=10`)) as {
            data: LedgerRecord[];
          };
          if (j.data.length) out.set(id, j.data);
        }),
      );
    }
    pending = pending.filter((id) => !out.has(id));
    if (pending.length === 0 || Date.now() > end) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  return out;
}

async function main(): Promise<void> {
  const a = parse(process.argv.slice(2));
  const say = (s: string) => (a.json ? process.stderr : process.stdout).write(s + "\n");
  say(`soak: starting the stack (2 backend replicas, tiny model); seed ${a.seed}`);
  const stack = await startLocalStack({
    replicas: 2,
    models: "tiny",
    threads: "1",
    timeoutMs: 300_000,
    // Short bounds, so a SIGSTOPped replica is given up on (before the first token: retried elsewhere).
    env: {
      STALL_TIMEOUT_MS: String(a.stallMs),
      FIRST_TOKEN_TIMEOUT_MS: String(2 * a.stallMs),
      ...(a.faults ? { FAULTS: "1" } : {}),
    },
  });
  try {
    const key = (await admin(stack, "/v1/admin/keys", {
      name: "soak",
      tiers: ["mistral-tiny"],
      rpm: 1_000_000,
      tpm: 1_000_000_000,
      monthly_budget_micros: 1_000_000_000_000,
    })) as { key: string };
    const rss = () => ({
      worker_mb: groupRssMb(stack.workerPid()),
      backends_mb: stack.backendPorts.map((p) => Math.round(rssMb(stack.backendPid(p)))),
    });
    const rssStart = rss();
    const rnd = mulberry32(a.seed);
    const t0 = Date.now();
    const deadline = t0 + a.minutes * 60_000;
    const hangMs = 60_000 + a.stopMs;
    const seen: Seen[] = [];
    let streaming = 0;
    let n = 0;
    const client = async () => {
      while (Date.now() < deadline) {
        const x = rnd();
        const kind: ClientKind = x < 0.55 ? "normal" : x < 0.7 ? "abort" : x < 0.8 ? "slow" : "unstreamed";
        const words = Array.from({ length: 2 + Math.floor(rnd() * 8) }, () => WORDS[Math.floor(rnd() * WORDS.length)]!);
        const i = n++;
        if (kind !== "unstreamed") streaming++;
        seen.push(
          await soakRequest({
            base: stack.base,
            apiKey: key.key,
            kind,
            maxTokens: 8 + Math.floor(rnd() * 56),
            temperature: rnd() < 0.5 ? 0 : 0.9,
            seed: Math.floor(rnd() * 1e6),
            prompt: rnd() < 0.4 ? `${PREAMBLE}\n${i}: ${words.join(" ")}` : `${i}: ${words.join(" ")}`,
            abortAfterFrames: 2 + Math.floor(rnd() * 6),
            slowReadMs: 20 + Math.floor(rnd() * 80),
            hangMs,
          }).finally(() => {
            if (kind !== "unstreamed") streaming--;
          }),
        );
      }
    };
    const faults: Array<{ atS: number; what: string }> = [];
    await Promise.all([
      ...Array.from({ length: a.concurrency }, client),
      a.faults
        ? runFaults(stack, a, mulberry32(a.seed ^ 0x5eed), deadline, () => streaming, faults, t0)
        : Promise.resolve(),
    ]);
    const runS = (Date.now() - t0) / 1000;
    const rssEnd = rss();
    // The backends' own view (their /metrics histograms; a restarted replica starts its counts over).
    const scrapes = await Promise.all(
      stack.backendPorts.map((p) =>
        fetch(`http://127.0.0.1:${p}/metrics`, { headers: { authorization: `Bearer ${stack.metricsToken}` } }).then(
          (r) => r.text(),
          () => "",
        ),
      ),
    );
    const backendQ = (name: string) => {
      const b = histogramBuckets(scrapes, name);
      return {
        p50: Math.round(histogramQuantile(b, 0.5) * 1e4) / 10,
        p99: Math.round(histogramQuantile(b, 0.99) * 1e4) / 10,
        n: b.at(-1)?.[1] ?? 0,
      };
    };
    say(`soak: ${seen.length} requests in ${runS.toFixed(0)} s; reconciling the ledger`);
    const ids = seen.flatMap((s) => (s.requestId ? [s.requestId] : []));
    const rec = reconcile(seen, await ledger(stack, ids), auditLines(stack.lines));
    const outcomes: Record<string, number> = {};
    for (const s of seen) outcomes[`${s.kind}/${s.outcome}`] = (outcomes[`${s.kind}/${s.outcome}`] ?? 0) + 1;
    const ttft = seen.flatMap((s) => (s.ttftMs !== undefined && s.kind !== "unstreamed" ? [s.ttftMs] : []));
    const itl = seen.filter((s) => s.kind !== "slow").flatMap((s) => s.gapsMs);
    const ms = (x: number) => Math.round(x * 10) / 10;
    const hung = seen.filter((s) => s.outcome === "hung").length;
    // The worker's watchdog at work (its request log lines name the bound that fired).
    const count = (re: RegExp) => stack.lines.filter((l) => l.startsWith("[worker] ") && re.test(l)).length;
    const watchdog = {
      no_headers_retried: count(/no response headers within \d+ ms/),
      no_first_event_retried: count(/replica stalled: no event within \d+ ms \(first_event\)/),
      stalled_mid_stream: count(/replica stalled: no event within \d+ ms \(stall\)/),
    };
    const report = {
      seed: a.seed,
      minutes: a.minutes,
      concurrency: a.concurrency,
      faults: a.faults,
      run_s: Math.round(runS),
      requests: seen.length,
      outcomes,
      fault_log: faults,
      watchdog,
      ttft_ms: { p50: ms(quantile(ttft, 0.5)), p99: ms(quantile(ttft, 0.99)), n: ttft.length },
      inter_chunk_ms: { p50: ms(quantile(itl, 0.5)), p99: ms(quantile(itl, 0.99)), n: itl.length },
      backend_ttft_ms: backendQ("moe_edge_time_to_first_token_seconds"),
      backend_inter_token_ms: backendQ("moe_edge_inter_token_latency_seconds"),
      rss_mb: { start: rssStart, end: rssEnd },
      ledger: {
        checked: rec.checked,
        by_status: rec.byStatus,
        lost: rec.lost.length,
        double_billed: rec.doubleBilled.length,
        under_billed: rec.underBilled.length,
      },
      hung,
      workerd_mb: { start: rssStart.worker_mb.workerd ?? 0, end: rssEnd.worker_mb.workerd ?? 0 },
      // What the clients saw go wrong besides the injected faults' expected stream errors.
      client_errors: seen
        .filter((x) => x.outcome === "http_error" || x.outcome === "network_error")
        .slice(0, 10)
        .map((x) =>
          `${x.kind}/${x.outcome} ${x.requestId ?? "(no request id)"} HTTP ${x.status}: ${x.detail ?? ""}`.slice(
            0,
            300,
          ),
        ),
      problems: [
        ...rec.lost.map((x) => `lost ${x}`),
        ...rec.doubleBilled.map((x) => `double-billed ${x}`),
        ...rec.underBilled.map((x) => `under-billed ${x}`),
      ].slice(0, 20),
    };
    if (a.json) process.stdout.write(JSON.stringify(report) + "\n");
    else {
      say(
        `outcomes: ${Object.entries(outcomes)
          .sort()
          .map(([k, v]) => `${k} ${v}`)
          .join(", ")}`,
      );
      for (const f of faults) say(`fault at ${f.atS} s: ${f.what}`);
      say(
        `worker watchdog (STALL_TIMEOUT_MS ${a.stallMs}, FIRST_TOKEN_TIMEOUT_MS ${2 * a.stallMs}): ${watchdog.no_headers_retried} replica(s) left without headers and ${watchdog.no_first_event_retried} without a first event (retried elsewhere), ${watchdog.stalled_mid_stream} stream(s) ended by a stall`,
      );
      say(
        `clients: TTFT p50 ${report.ttft_ms.p50} ms, p99 ${report.ttft_ms.p99} ms (${ttft.length} streams); inter-chunk p50 ${report.inter_chunk_ms.p50} ms, p99 ${report.inter_chunk_ms.p99} ms`,
      );
      const bt = report.backend_ttft_ms;
      const bi = report.backend_inter_token_ms;
      say(
        `backends (/metrics, since each replica's last start): TTFT p50 ${bt.p50} ms, p99 ${bt.p99} ms (${bt.n}); inter-token p50 ${bi.p50} ms, p99 ${bi.p99} ms (${bi.n})`,
      );
      const w = (r: Record<string, number>) =>
        Object.entries(r)
          .map(([k, v]) => `${k} ${v}`)
          .join(" + ");
      say(
        `RSS worker ${w(rssStart.worker_mb)} -> ${w(rssEnd.worker_mb)} MB; backends ${rssStart.backends_mb.join("/")} -> ${rssEnd.backends_mb.join("/")} MB`,
      );
      say(`workerd memory: ${rssStart.worker_mb.workerd ?? 0} MB at start, ${rssEnd.worker_mb.workerd ?? 0} MB at end`);
      say(
        `ledger: ${rec.checked} request ids checked: ${Object.entries(rec.byStatus)
          .map(([k, v]) => `${k} ${v}`)
          .join(
            ", ",
          )}; lost ${rec.lost.length}, double-billed ${rec.doubleBilled.length}, under-billed ${rec.underBilled.length}, hung ${hung}`,
      );
      for (const p of report.problems) say(`  ${p}`);
      for (const e of report.client_errors) say(`  client: ${e}`);
    }
    process.exitCode = rec.lost.length || rec.doubleBilled.length || hung ? 1 : 0;
  } finally {
    // SOAK_LINES=<file>: every launcher line (the stack's own logs), for a post-mortem.
    if (process.env.SOAK_LINES) writeFileSync(process.env.SOAK_LINES, stack.lines.join("\n"));
    await stack.stop();
  }
}

runCli("soak", main);
