/**
 * The backend's side of the replica registry (contract/registry.ts): with --register it joins the worker's
 * live replica set once ready, heartbeats its load every --heartbeat-ms, announces "draining" on SIGTERM
 * and deregisters last. Heartbeats are strictly sequential (one in flight at a time, the next timed from
 * the end of the last): a "ready" beat sent before SIGTERM can then never arrive after the "draining" one.
 * A failed beat is logged once per outage and retried on the next tick; the registry forgets a replica
 * that misses several, so a backend cut off from the worker simply drops out of rotation.
 */
import { randomBytes } from "node:crypto";
import {
  type HeartbeatAck,
  REGISTRY_DEREGISTER_PATH,
  REGISTRY_HEARTBEAT_PATH,
  type ReplicaReport,
  type ReplicaState,
} from "../../contract/registry";
import type { RegistryConfig } from "../config";

/** The load figures of a report, read from the engines at each beat. */
export type LoadReport = Pick<
  ReplicaReport,
  "models" | "slots" | "in_flight" | "queue_depth" | "kv_free_blocks" | "served"
>;

const BEAT_TIMEOUT_MS = 5_000;

export class Registration {
  /** Random per process: the registry tells a restart at the same URL from this process's late beats. */
  readonly instance = randomBytes(12).toString("hex");
  private state: ReplicaState = "ready";
  private timer: NodeJS.Timeout | null = null;
  private beating: Promise<boolean> | null = null;
  private stopped = false;
  private failing = false;
  private announced = false;

  constructor(
    private readonly cfg: RegistryConfig,
    /** The URL the worker reaches this replica at. */
    readonly url: string,
    private readonly version: string,
    private readonly load: () => LoadReport,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  /** First beat now (resolves with whether the registry took it), then one every heartbeatMs. */
  async start(): Promise<boolean> {
    const ok = await this.beat();
    this.schedule();
    return ok;
  }

  /** Marks this replica draining in the registry; resolves once the registry has it (or the try failed). */
  async drain(): Promise<boolean> {
    this.state = "draining";
    // Wait out a beat in flight (it may still say "ready"), then say "draining" at once.
    await this.beating;
    if (this.timer) clearTimeout(this.timer);
    const ok = await this.beat();
    this.schedule();
    return ok;
  }

  /** Stops beating and leaves the registry (the last step before exit). */
  async deregister(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.beating;
    await this.post(REGISTRY_DEREGISTER_PATH, { url: this.url, instance: this.instance }).catch((e: unknown) =>
      console.error(`backend: registry deregister failed (${(e as Error).message}); it expires the replica instead`),
    );
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.beat().then(() => this.schedule());
    }, this.cfg.heartbeatMs);
    this.timer.unref();
  }

  private beat(): Promise<boolean> {
    if (this.stopped) return Promise.resolve(false);
    const report: ReplicaReport = {
      url: this.url,
      instance: this.instance,
      version: this.version,
      state: this.state,
      ...this.load(),
    };
    this.beating = this.post(REGISTRY_HEARTBEAT_PATH, report)
      .then((ack) => {
        const a = ack as HeartbeatAck;
        if (this.failing || !this.announced)
          console.error(`backend: registered at ${this.cfg.workerUrl} as ${a.id} (${this.url}, ${this.state})`);
        this.failing = false;
        this.announced = true;
        return true;
      })
      .catch((e: unknown) => {
        const cause = (e as Error & { cause?: { code?: string } }).cause?.code;
        if (!this.failing)
          console.error(
            `backend: registry heartbeat failed (${(e as Error).message}${cause ? `: ${cause}` : ""}); retrying`,
          );
        this.failing = true;
        return false;
      })
      .finally(() => {
        this.beating = null;
      });
    return this.beating;
  }

  private async post(path: string, body: unknown): Promise<unknown> {
    const res = await this.fetchImpl(this.cfg.workerUrl + path, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${this.cfg.token}` },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(BEAT_TIMEOUT_MS),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
    return JSON.parse(text) as unknown;
  }
}
