/** A local stand-in for the worker's POST /internal/usage: fails on demand, records what arrives. */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { UsageBatchSchema, type UsageRecord } from "../../../contract/usage";

export interface Receiver {
  url: string;
  /** Every acknowledged record, in arrival order (duplicates included). */
  received: UsageRecord[];
  /** Every record of every well-formed batch, acknowledged or not. */
  offered: UsageRecord[];
  /** Requests seen (failed ones included) and the Authorization headers they carried. */
  posts: number;
  /** Records per well-formed batch. */
  batches: number[];
  auths: string[];
  /** How the next requests are answered: "fail" answers 500 (as many times as failNext says). */
  failNext: number;
  /** Ack only ids this predicate accepts (partial acks). */
  ackIf: (r: UsageRecord) => boolean;
  /** Resolves once `pred` holds, re-checked after every request. */
  until: (pred: () => boolean) => Promise<void>;
  close: () => Promise<void>;
}

export async function startReceiver(token: string, o: { failNext?: number } = {}): Promise<Receiver> {
  const waiters: Array<{ pred: () => boolean; resolve: () => void }> = [];
  const check = () => {
    for (const w of [...waiters]) if (w.pred()) waiters.splice(waiters.indexOf(w), 1), w.resolve();
  };
  const r: Omit<Receiver, "url"> & { url: string } = {
    url: "",
    received: [],
    offered: [],
    posts: 0,
    batches: [],
    auths: [],
    failNext: o.failNext ?? 0,
    ackIf: () => true,
    until: (pred) =>
      new Promise((resolve) => {
        waiters.push({ pred, resolve });
        check();
      }),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      r.posts++;
      r.auths.push(req.headers.authorization ?? "");
      const answer = (status: number, json: unknown) => {
        res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(json));
        check();
      };
      if (req.headers.authorization !== `Bearer ${token}`) return answer(401, { error: "unauthorized" });
      let json: unknown = null;
      try {
        json = JSON.parse(body);
      } catch {
        /* handled below */
      }
      const parsed = UsageBatchSchema.safeParse(json);
      if (!parsed.success) return answer(400, { error: parsed.error.message });
      r.offered.push(...parsed.data.records);
      r.batches.push(parsed.data.records.length);
      if (r.failNext > 0) {
        r.failNext--;
        return answer(500, { error: "down" });
      }
      const acked = parsed.data.records.filter((x) => r.ackIf(x));
      r.received.push(...acked);
      answer(200, { acked: acked.map((x) => x.id) });
    });
  });
  server.keepAliveTimeout = 1;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/internal/usage`;
  return r;
}
