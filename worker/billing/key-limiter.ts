/**
 * Per-key Durable Object (one per key id): RPM/TPM buckets per tier, the monthly budget and the
 * reservations held by requests in flight. Every method runs synchronously over the DO's SQLite
 * storage (no await between read and write), so concurrent admits are strictly serialised: 40
 * parallel requests against a budget for 3 admit exactly 3.
 *
 * A reservation ends only with a settle: the worker's, or the backend's report merged into the ledger
 * (worker/billing/report-merge.ts). For one the worker never settled, the alarm asks the tier's backends
 * (worker/billing/late-reservations.ts) and releases it only when they prove they never saw the request.
 * Settles charge per request id up to the largest cost seen (`charged_units`), so the worker's settle
 * and the backend's report, in any order and any number of times, charge the ledger row's cost once.
 * The month's spend is rebuilt from the D1 ledger when this object has no state for the month
 * (limiter-rebuild.ts), before anything is admitted or charged.
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env";
import { checkReservations, type Reservation } from "./late-reservations";
import { rebuildMonth } from "./limiter-rebuild";
import { microsToUnits, parseUnits } from "./money";
import { type Bucket, rateHeaders, refill, waitMs } from "./rate";
import type {
  LimiterAdmitInput,
  LimiterAdmitResult,
  LimiterCountInput,
  LimiterExtendInput,
  LimiterSettleInput,
  LimiterStatus,
  Pricing,
  RefusalReason,
} from "./types";

const RETAIN_MS = 48 * 3600_000;
const SWEEP_EVERY_MS = 5 * 60_000;

/** UTC "YYYY-MM" of a timestamp: budgets are per calendar month. */
export const monthOf = (ms: number) => new Date(ms).toISOString().slice(0, 7);

type Kind = "requests" | "tokens";

export class KeyLimiter extends DurableObject<Env> {
  private alarmAt: number | null = null;
  /** The RPM/TPM buckets' clock: Date.now, or a fixed one a test sets through runInDurableObject. */
  clock: () => number = () => Date.now();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const sql = ctx.storage.sql;
    sql.exec(`CREATE TABLE IF NOT EXISTS buckets (
      tier TEXT NOT NULL, kind TEXT NOT NULL, level REAL NOT NULL, updated_ms INTEGER NOT NULL, capacity INTEGER NOT NULL,
      PRIMARY KEY (tier, kind))`);
    sql.exec(`CREATE TABLE IF NOT EXISTS requests (
      request_id TEXT PRIMARY KEY, tier TEXT NOT NULL, reserved_tokens INTEGER NOT NULL, reserved_units TEXT NOT NULL,
      state TEXT NOT NULL, created_ms INTEGER NOT NULL)`);
    sql.exec(`CREATE INDEX IF NOT EXISTS requests_state ON requests (state, created_ms)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS spend (month TEXT PRIMARY KEY, units TEXT NOT NULL)`);
    // Months whose spend this object holds in full (rebuilt from the ledger, or started here).
    sql.exec(`CREATE TABLE IF NOT EXISTS periods (month TEXT PRIMARY KEY)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)`);
    // Columns added after the first release; ALTER fails harmlessly on objects that already have the columns.
    // final_charge: a deliveredFinal settle fixed this id's charge (no later write changes it).
    for (const col of ["charged_units TEXT", "price TEXT", "final_charge INTEGER NOT NULL DEFAULT 0"]) {
      try {
        sql.exec(`ALTER TABLE requests ADD COLUMN ${col}`);
      } catch {
        /* column exists */
      }
    }
    void ctx.blockConcurrencyWhile(async () => {
      this.alarmAt = await ctx.storage.getAlarm();
    });
  }

  admit(input: LimiterAdmitInput): LimiterAdmitResult | Promise<LimiterAdmitResult> {
    const rebuilding = this.ensureMonth(input.keyId);
    return rebuilding ? rebuilding.then(() => this.admitNow(input)) : this.admitNow(input);
  }

  private admitNow(input: LimiterAdmitInput): LimiterAdmitResult {
    const now = this.clock();
    const { tier, rpm, tpm } = input;
    const requests = refill(this.planned(tier, "requests", rpm), rpm, now);
    const tokens = refill(this.planned(tier, "tokens", tpm), tpm, now);
    const headers = () => rateHeaders({ rpm, tpm, requests, tokens });
    const refuse = (
      reason: RefusalReason,
      retryAfterMs: number | null,
      spend?: { spentUnits: string; reservedUnits: string },
    ): LimiterAdmitResult => {
      this.saveBucket(tier, "requests", requests, rpm);
      this.saveBucket(tier, "tokens", tokens, tpm);
      return { ok: false, reason, retryAfterMs, headers: headers(), ...(spend ? { spend } : {}) };
    };

    const existing = this.ctx.storage.sql
      .exec<{ state: string }>("SELECT state FROM requests WHERE request_id = ?", input.requestId)
      .toArray()[0];
    // A batch line run again whose earlier attempt is settled reserves afresh (its charge merges by max);
    // one whose earlier attempt still holds the reservation runs on it (the caller takes "duplicate" so).
    if (existing && !(input.batchLine && existing.state !== "reserved")) return refuse("duplicate", null);

    // Budget first: no amount of waiting for rate limits helps when the money is gone.
    const reserve = parseUnits(input.reserveUnits);
    const budget = microsToUnits(input.budgetMicros);
    const spent = this.spent(monthOf(now));
    const reserved = this.reservedUnits();
    const spend = { spentUnits: spent.toString(), reservedUnits: reserved.toString() };
    if (spent + reserve > budget) return refuse("budget", null, spend);
    if (spent + reserved + reserve > budget) return refuse("budget", 1000, spend); // in-flight requests may release theirs

    const needTokens = Math.max(0, input.tokens);
    if (needTokens > tpm) return refuse("too_large", null);
    // A request counted before its body was tokenized (countRequest) took its RPM token then.
    const waitRequests = input.requestCounted ? 0 : waitMs(requests, rpm, 1);
    if (waitRequests > 0) return refuse("requests", waitRequests);
    const waitTokens = waitMs(tokens, tpm, needTokens);
    if (waitTokens > 0) return refuse("tokens", waitTokens);

    if (!input.requestCounted) requests.level -= 1;
    tokens.level -= needTokens;
    this.saveBucket(tier, "requests", requests, rpm);
    this.saveBucket(tier, "tokens", tokens, tpm);
    this.ctx.storage.sql.exec(
      `INSERT INTO requests (request_id, tier, reserved_tokens, reserved_units, state, created_ms, charged_units, price)
       VALUES (?, ?, ?, ?, 'reserved', ?, '0', ?)
       ON CONFLICT (request_id) DO UPDATE SET state = 'reserved', reserved_tokens = excluded.reserved_tokens,
         reserved_units = excluded.reserved_units, created_ms = excluded.created_ms, price = excluded.price`,
      input.requestId,
      tier,
      needTokens,
      reserve.toString(),
      now,
      JSON.stringify(input.pricing),
    );
    this.ensureAlarm(now);
    return { ok: true, headers: headers() };
  }

  /**
   * Grows a live reservation by one slice when the budget still covers it (spent + every reservation,
   * this slice included); false when it does not, or when the request is no longer reserved (settled,
   * expired). Serialised like admit, so slices of concurrent requests never overlap the same money.
   * A batch line's reservation settled under it (the late report of the attempt before a crash) is
   * reopened with the slice instead: the running attempt goes on, and its own settle closes it again.
   */
  extend(input: LimiterExtendInput): boolean {
    const sql = this.ctx.storage.sql;
    const row = sql
      .exec<{ state: string; reserved_units: string }>(
        "SELECT state, reserved_units FROM requests WHERE request_id = ?",
        input.requestId,
      )
      .toArray()[0];
    const reopen = input.batchLine === true && row !== undefined && row.state !== "reserved";
    if (row?.state !== "reserved" && !reopen) return false;
    const add = parseUnits(input.units);
    const budget = microsToUnits(input.budgetMicros);
    if (this.spent(monthOf(Date.now())) + this.reservedUnits() + add > budget) return false;
    // Reopened: no TPM is held for it (reserved_tokens 0), so its settle refunds none.
    sql.exec(
      `UPDATE requests SET state = 'reserved', reserved_units = ?${reopen ? ", reserved_tokens = 0" : ""} WHERE request_id = ?`,
      ((reopen ? 0n : parseUnits(row!.reserved_units)) + add).toString(),
      input.requestId,
    );
    return true;
  }

  /** Takes one request from the tier's RPM bucket; nothing is reserved, so nothing is settled. */
  countRequest(input: LimiterCountInput): LimiterAdmitResult {
    const now = this.clock();
    const { tier, rpm, tpm } = input;
    const requests = refill(this.planned(tier, "requests", rpm), rpm, now);
    const tokens = refill(this.planned(tier, "tokens", tpm), tpm, now);
    const wait = waitMs(requests, rpm, 1);
    if (wait === 0) requests.level -= 1;
    this.saveBucket(tier, "requests", requests, rpm);
    this.saveBucket(tier, "tokens", tokens, tpm);
    const headers = rateHeaders({ rpm, tpm, requests, tokens });
    return wait === 0 ? { ok: true, headers } : { ok: false, reason: "requests", retryAfterMs: wait, headers };
  }

  /**
   * Releases the reservation (if any) and refunds unused tokens to TPM, once; charges the id up to the
   * largest cost any write reported (a repeat, or a smaller count, charges nothing). A `final` write sets
   * the charge to its cost, refunding any excess an earlier report charged, and no later write moves it.
   */
  settle(input: LimiterSettleInput): void | Promise<void> {
    const rebuilding = this.ensureMonth(input.keyId);
    return rebuilding ? rebuilding.then(() => this.settleNow(input)) : this.settleNow(input);
  }

  private settleNow(input: LimiterSettleInput): void {
    const now = this.clock();
    const sql = this.ctx.storage.sql;
    const row = sql
      .exec<{ state: string; reserved_tokens: number; charged_units: string | null; final_charge: number }>(
        "SELECT state, reserved_tokens, charged_units, final_charge FROM requests WHERE request_id = ?",
        input.requestId,
      )
      .toArray()[0];

    const units = parseUnits(input.units);
    // Rows settled before charged_units existed, and forgotten ids, charged what the ledger already held.
    const charged = row && row.charged_units !== null ? parseUnits(row.charged_units) : parseUnits(input.previousUnits);
    const fixed = row?.final_charge === 1;
    // biome-ignore lint/complexity/useMathMinMax: bigints (Math.max throws on them)
    const target = fixed ? charged : input.final ? units : units > charged ? units : charged;
    if (target !== charged) {
      const month = monthOf(input.startedAt > 0 ? input.startedAt : now);
      sql.exec(
        "INSERT OR REPLACE INTO spend (month, units) VALUES (?, ?)",
        month,
        (this.spent(month) + target - charged).toString(),
      );
    }
    const chargedNow = target.toString();
    const finalNow = fixed || input.final === true ? 1 : 0;
    if (row?.state === "reserved") {
      const stored = this.stored(input.tier, "tokens");
      if (stored) {
        const { capacity } = stored;
        const b = refill(stored.bucket, capacity, now);
        b.level = Math.min(capacity, b.level + row.reserved_tokens - Math.max(0, input.tokens));
        this.saveBucket(input.tier, "tokens", b, capacity);
      }
    }
    if (row)
      sql.exec(
        "UPDATE requests SET state = 'settled', reserved_units = '0', charged_units = ?, final_charge = ? WHERE request_id = ?",
        chargedNow,
        finalNow,
        input.requestId,
      );
    else
      sql.exec(
        "INSERT INTO requests (request_id, tier, reserved_tokens, reserved_units, state, created_ms, charged_units, final_charge) VALUES (?, ?, 0, '0', 'settled', ?, ?, ?)",
        input.requestId,
        input.tier,
        now,
        chargedNow,
        finalNow,
      );
    this.ensureAlarm(now);
  }

  /** The price each id was admitted at (null: not admitted here, or forgotten). */
  admissionPricing(requestIds: string[]): Record<string, Pricing | null> {
    const out: Record<string, Pricing | null> = {};
    for (const id of requestIds) {
      const r = this.ctx.storage.sql
        .exec<{ price: string | null }>("SELECT price FROM requests WHERE request_id = ?", id)
        .toArray()[0];
      out[id] = r?.price ? (JSON.parse(r.price) as Pricing) : null;
    }
    return out;
  }

  /** Ends a reservation without charge: the backends proved they never saw the request (billing/late-reservations.ts). */
  release(requestId: string): void {
    this.ctx.storage.sql.exec(
      "UPDATE requests SET state = 'released', reserved_units = '0' WHERE request_id = ? AND state = 'reserved'",
      requestId,
    );
  }

  status(keyId?: string): LimiterStatus | Promise<LimiterStatus> {
    const rebuilding = keyId ? this.ensureMonth(keyId) : null;
    return rebuilding ? rebuilding.then(() => this.statusNow()) : this.statusNow();
  }

  private statusNow(): LimiterStatus {
    const month = monthOf(Date.now());
    const reservations = this.ctx.storage.sql
      .exec<{ n: number }>("SELECT COUNT(*) AS n FROM requests WHERE state = 'reserved'")
      .one().n;
    return {
      month,
      spentUnits: this.spent(month).toString(),
      reservedUnits: this.reservedUnits().toString(),
      reservations,
    };
  }

  /**
   * Forgets old ids, and asks the backends about reservations whose settle is late: a finished request's
   * record is merged (and settles here), one no backend ever saw is released. Nothing is released for time alone.
   */
  override async alarm(): Promise<void> {
    const now = Date.now();
    const sql = this.ctx.storage.sql;
    // IN (not !=) so the (state, created_ms) index serves the sweep instead of a full-table scan.
    sql.exec(
      "DELETE FROM requests WHERE state IN ('settled', 'expired', 'released') AND created_ms < ?",
      now - RETAIN_MS,
    );
    this.alarmAt = null;
    const late = sql
      .exec<Reservation>(
        "SELECT request_id, tier, created_ms FROM requests WHERE state = 'reserved' ORDER BY created_ms LIMIT 500",
      )
      .toArray();
    if (late.length) await checkReservations(this.env, this, late, now);
    const left = sql.exec("SELECT 1 FROM requests LIMIT 1").toArray().length;
    if (left) this.ensureAlarm(Date.now());
  }

  /** The key id this object serves (stored at its first admit or settle). */
  keyId(): string | null {
    return this.ctx.storage.sql.exec<{ v: string }>("SELECT v FROM meta WHERE k = 'key_id'").toArray()[0]?.v ?? null;
  }

  /**
   * null when this object holds the current month's spend; otherwise a promise that rebuilds it from the
   * ledger while no other call runs (blockConcurrencyWhile), so nothing is admitted against a lost spend.
   */
  private ensureMonth(keyId: string): Promise<void> | null {
    const sql = this.ctx.storage.sql;
    const month = monthOf(Date.now());
    if (sql.exec("SELECT 1 FROM periods WHERE month = ?", month).toArray().length) return null;
    return this.ctx.blockConcurrencyWhile(async () => {
      if (sql.exec("SELECT 1 FROM periods WHERE month = ?", month).toArray().length) return;
      const snap = await rebuildMonth(this.env.DB, keyId, month, Date.now());
      sql.exec("INSERT OR REPLACE INTO meta (k, v) VALUES ('key_id', ?)", keyId);
      sql.exec("INSERT OR REPLACE INTO spend (month, units) VALUES (?, ?)", month, snap.spentUnits.toString());
      // The spend is now the ledger's sum: recently changed rows count as charged at their ledger cost, so a
      // settle of theirs still in flight (or queued) charges only what the ledger did not yet hold.
      for (const r of snap.recent) {
        sql.exec(
          `INSERT INTO requests (request_id, tier, reserved_tokens, reserved_units, state, created_ms, charged_units) VALUES (?, ?, 0, '0', 'settled', ?, ?)
           ON CONFLICT(request_id) DO UPDATE SET charged_units = excluded.charged_units`,
          r.requestId,
          r.tier,
          Date.now(),
          r.costUnits,
        );
      }
      sql.exec("INSERT INTO periods (month) VALUES (?)", month);
    });
  }

  private ensureAlarm(now: number): void {
    if (this.alarmAt !== null) return;
    this.alarmAt = now + SWEEP_EVERY_MS;
    void this.ctx.storage.setAlarm(this.alarmAt);
  }

  /** The stored bucket and the capacity it was saved with (one read). */
  private stored(tier: string, kind: Kind): { bucket: Bucket; capacity: number } | undefined {
    const r = this.ctx.storage.sql
      .exec<{ level: number; updated_ms: number; capacity: number }>(
        "SELECT level, updated_ms, capacity FROM buckets WHERE tier = ? AND kind = ?",
        tier,
        kind,
      )
      .toArray()[0];
    return r ? { bucket: { level: r.level, updatedMs: r.updated_ms }, capacity: r.capacity } : undefined;
  }

  /** The stored bucket; a plan raised since it was saved grants the increase at once (a cut clamps in refill). */
  private planned(tier: string, kind: Kind, capacity: number): Bucket | undefined {
    const s = this.stored(tier, kind);
    if (s && capacity > s.capacity) s.bucket.level += capacity - s.capacity;
    return s?.bucket;
  }

  private saveBucket(tier: string, kind: Kind, b: Bucket, capacity: number): void {
    this.ctx.storage.sql.exec(
      "INSERT OR REPLACE INTO buckets (tier, kind, level, updated_ms, capacity) VALUES (?, ?, ?, ?, ?)",
      tier,
      kind,
      b.level,
      b.updatedMs,
      capacity,
    );
  }

  private spent(month: string): bigint {
    const r = this.ctx.storage.sql
      .exec<{ units: string }>("SELECT units FROM spend WHERE month = ?", month)
      .toArray()[0];
    return parseUnits(r?.units);
  }

  private reservedUnits(): bigint {
    let total = 0n;
    for (const r of this.ctx.storage.sql.exec<{ reserved_units: string }>(
      "SELECT reserved_units FROM requests WHERE state = 'reserved'",
    ))
      total += parseUnits(r.reserved_units);
    return total;
  }
}
