/** The ledger record a settled (or refused) request becomes: exact tokens and cost units, nothing else. */
import { costUnits, isValidPricing, tokenCount } from "./money";
import type { UsageRecord } from "./ledger";
import type { Account, SettleRequest } from "./types";

export function rejectedRecord(account: Account, requestId: string, model: string, now: number): UsageRecord {
  return {
    requestId,
    keyId: account.keyId,
    model,
    promptTokens: 0,
    cachedTokens: 0,
    completionTokens: 0,
    costUnits: "0",
    status: "rejected",
    startedAt: now,
    endedAt: now,
  };
}

/** Builds the ledger record; a rejected request costs nothing and carries no tokens. */
export function toRecord(account: Account, req: SettleRequest): UsageRecord {
  const now = Date.now();
  const startedAt = tokenCount(req.startedAt) || now;
  const endedAt = Math.max(startedAt, tokenCount(req.endedAt) || now);
  const batch = req.batchId ? { batchId: req.batchId } : {};
  if (req.status === "rejected")
    return { ...rejectedRecord(account, req.requestId, req.model, startedAt), endedAt, ...batch };
  const promptTokens = tokenCount(req.promptTokens);
  const t = {
    promptTokens,
    cachedTokens: Math.min(tokenCount(req.cachedTokens), promptTokens),
    completionTokens: tokenCount(req.completionTokens),
  };
  const units = isValidPricing(req.pricing) ? costUnits(req.pricing, t) : 0n;
  return {
    requestId: req.requestId,
    keyId: account.keyId,
    model: req.model,
    ...t,
    costUnits: units.toString(),
    status: req.status,
    startedAt,
    endedAt,
    ...(isValidPricing(req.pricing) ? { pricing: req.pricing } : {}),
    ...(req.deliveredFinal ? { deliveredFinal: true } : {}),
    ...batch,
  };
}
