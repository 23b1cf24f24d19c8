/**
 * The soak's ledger reconciliation: every request id a client saw has exactly one ledger record, and its
 * tokens follow the billing rules (README "Money and metering"):
 *   completed      = the usage the client was told
 *   stream_error   = what was delivered (the usage on the error chunk)
 *   aborted        = what the backend generated before the cancel landed (its audit line), never more
 *   http_error     = nothing billed
 * and no record bills more completion tokens than the backend's audit line says it generated.
 */
import type { Seen } from "./soak-client";

export interface LedgerRecord {
  request_id: string;
  status: string;
  prompt_tokens: number;
  cached_tokens: number;
  completion_tokens: number;
  cost_units: string;
}

/** The backend's audit line for a generation (gpu-backend/server/app.ts). */
export interface AuditLine {
  request_id: string;
  completion_tokens: number;
  prompt_tokens: number;
  finish_reason: string;
}

export interface Reconciliation {
  checked: number;
  /** Seen by a client, no ledger record. */
  lost: string[];
  /** More than one record, or more completion tokens billed than generated or than the rules allow. */
  doubleBilled: string[];
  /** Fewer tokens billed than the rules say (the house loses, the client does not). */
  underBilled: string[];
  byStatus: Record<string, number>;
}

/** Audit lines by request id, from the launcher's "[backend] {...}" lines. */
export function auditLines(lines: readonly string[]): Map<string, AuditLine[]> {
  const out = new Map<string, AuditLine[]>();
  for (const line of lines) {
    const at = line.indexOf('{"event":"generate"');
    if (!line.startsWith("[backend] ") || at < 0) continue;
    try {
      const j = JSON.parse(line.slice(at)) as AuditLine;
      out.set(j.request_id, [...(out.get(j.request_id) ?? []), j]);
    } catch {
      // a line torn across pipe chunks: reconciliation then treats that request as unaudited
    }
  }
  return out;
}

export function reconcile(
  seen: readonly Seen[],
  records: Map<string, LedgerRecord[]>,
  audit: Map<string, AuditLine[]>,
): Reconciliation {
  const r: Reconciliation = { checked: 0, lost: [], doubleBilled: [], underBilled: [], byStatus: {} };
  for (const s of seen) {
    if (!s.requestId) continue; // never reached the worker: nothing to bill
    r.checked++;
    const id = s.requestId;
    const recs = records.get(id) ?? [];
    const where = `${id} (${s.kind}, ${s.outcome})`;
    if (recs.length === 0) {
      r.lost.push(where);
      continue;
    }
    if (recs.length > 1) {
      r.doubleBilled.push(`${where}: ${recs.length} ledger records`);
      continue;
    }
    const rec = recs[0]!;
    r.byStatus[rec.status] = (r.byStatus[rec.status] ?? 0) + 1;
    const lines = audit.get(id) ?? [];
    const generated = lines.length ? Math.max(...lines.map((l) => l.completion_tokens)) : undefined;
    const billed = rec.completion_tokens;
    if (generated !== undefined && billed > generated) {
      r.doubleBilled.push(`${where}: billed ${billed} completion tokens, the backend generated ${generated}`);
      continue;
    }
    const expect = (want: number, what: string) => {
      if (billed > want) r.doubleBilled.push(`${where}: billed ${billed} completion tokens, ${what} ${want}`);
      else if (billed < want) r.underBilled.push(`${where}: billed ${billed} completion tokens, ${what} ${want}`);
    };
    switch (s.outcome) {
      case "completed":
      case "stream_error":
        if (s.usage) expect(s.usage.completion_tokens, "the client was told");
        break;
      case "aborted":
        // Billed what the backend generated before it stopped; without its audit line (the replica was
        // killed), only the upper bound above applies.
        if (generated !== undefined) expect(generated, "the backend generated");
        break;
      case "http_error":
        expect(0, "a refused request costs");
        break;
      default:
        break;
    }
  }
  return r;
}

export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}
