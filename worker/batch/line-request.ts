/**
 * How a batch line enters the same path as an interactive request: the queue consumer builds an ordinary
 * Request for /v1/chat/completions or /v1/embeddings and hands it to the app's own fetch, in this isolate.
 * The Request object is registered here with the line's account, ledger id and batch id; the app reads
 * them instead of an API key (app.ts). A Request from the network is never in this map, so no client can
 * claim to be a batch line, and nothing about it travels in headers.
 */
import type { Account } from "../billing/types";

export interface BatchLine {
  account: Account;
  /** The line's ledger id: one per batch and line, reused by every retry of the line (idempotent billing). */
  requestId: string;
  batchId: string;
  /** 1-based line number in the input file. */
  line: number;
}

const lines = new WeakMap<Request, BatchLine>();

export function lineRequest(url: string, body: unknown, line: BatchLine, signal: AbortSignal): Request {
  const req = new Request(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
  lines.set(req, line);
  return req;
}

/** The batch line a Request was made for, or undefined for every request from the network. */
export function batchLineOf(req: Request): BatchLine | undefined {
  return lines.get(req);
}
