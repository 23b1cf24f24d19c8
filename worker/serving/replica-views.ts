/** GET /v1/admin/replicas' rows: the registry read fresh (not the routing snapshot), tiers named from TIERS. */
import type { ReplicaView } from "../../contract/api-accounts";
import type { Env } from "../env";
import { registryStub, type ReplicaRecord } from "../registry/replica-registry";
import { getTiers } from "../config/tiers";

export async function replicaViews(env: Env): Promise<ReplicaView[]> {
  const stub = registryStub(env);
  if (!stub) return [];
  const list = (await stub.list()) as ReplicaRecord[];
  let tiers: ReturnType<typeof getTiers> | null = null;
  try {
    tiers = getTiers(env.TIERS);
  } catch {
    // A bad TIERS var is logged by getTiers; the replicas are still worth showing.
  }
  return list.map((r) => ({
    id: r.id,
    url: r.url,
    models: r.models,
    tiers: tiers ? [...tiers.values()].filter((t) => r.models.includes(t.backendModel)).map((t) => t.name) : [],
    state: r.state,
    in_flight: r.in_flight,
    queue_depth: r.queue_depth,
    kv_free_blocks: r.kv_free_blocks,
    slots: r.slots,
    served: r.served,
    last_seen: new Date(r.last_seen).toISOString(),
    version: r.version,
  }));
}
