/**
 * Per-request bookkeeping shared by the chat and embeddings routes: settle-exactly-once and the
 * one structured log line.
 */
import type { Context } from "hono";
import type { AppEnv } from "../app";
import { recordRejected, settle } from "../billing/meter";
import type { Account, Pricing, UsageStatus } from "../billing/types";
import { logRequest, type RequestLog } from "./request-log";

/**
 * Yields one macrotask so the handler returns its Response (and the runtime starts writing it)
 * before the settle subrequests start competing for the isolate. The work stays under waitUntil.
 */
const afterResponse = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

export interface Settlement {
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  status: UsageStatus;
}

export class RequestScope {
  readonly startedAt = Date.now();
  readonly requestId: string;
  readonly account: Account;
  readonly log: Omit<RequestLog, "latency_ms" | "status">;
  private settled = false;

  constructor(
    private readonly c: Context<AppEnv>,
    endpoint: RequestLog["endpoint"],
  ) {
    this.requestId = c.get("requestId");
    this.account = c.get("account");
    this.log = { request_id: this.requestId, key_id: this.account.keyId, endpoint, model: null };
  }

  /** Charges and records the request exactly once, in the background (survives a client disconnect). */
  settle(model: string, pricing: Pricing, s: Settlement): void {
    if (this.settled) return;
    this.settled = true;
    Object.assign(this.log, { prompt_tokens: s.promptTokens, cached_tokens: s.cachedTokens, completion_tokens: s.completionTokens });
    const req = { requestId: this.requestId, model, pricing, ...s, startedAt: this.startedAt, endedAt: Date.now() };
    this.c.executionCtx.waitUntil(afterResponse().then(() => settle(this.c.env, this.account, req)));
  }

  /** A request refused before admission (validation): a zero-cost "rejected" record. */
  reject(model: string): void {
    if (this.settled) return;
    this.settled = true;
    const r = { requestId: this.requestId, model, startedAt: this.startedAt };
    this.c.executionCtx.waitUntil(afterResponse().then(() => recordRejected(this.c.env, this.account, r)));
  }

  /** The runtime's ExecutionContext (Hono types it more narrowly than workers-types). */
  get ctx(): ExecutionContext {
    return this.c.executionCtx as unknown as ExecutionContext;
  }

  /** Someone else (admit's refusal) already wrote this request's record. */
  markSettled(): void {
    this.settled = true;
  }

  get isSettled(): boolean {
    return this.settled;
  }

  finish(status: number, extra: Partial<RequestLog> = {}): void {
    logRequest({ ...this.log, ...extra, status, latency_ms: Date.now() - this.startedAt });
  }
}
