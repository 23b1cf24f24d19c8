/**
 * The live replica set (GET /v1/admin/replicas): state, load and served counts per backend, refreshed every
 * REFRESH_MS while the section is on screen (the registry's own heartbeat is 2 s).
 */
import type { Api } from "../api";
import { h, replace } from "../dom";
import { int } from "../format";
import { notice } from "../notice";
import { heading, type Section } from "../shell";
import { type Column, dataTable } from "../table";
import type { ReplicaList, ReplicaView } from "../types";

const REFRESH_MS = 2_000;

const ago = (iso: string): string => `${Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000))} s ago`;

const columns: Column<ReplicaView>[] = [
  { label: "Replica", value: (r) => h("span", { title: r.id }, r.url) },
  { label: "State", value: (r) => h("span", { class: `state ${r.state}`, "data-state": r.state }, r.state) },
  { label: "Tiers", value: (r) => r.tiers.join(", ") || r.models.join(", ") },
  { label: "In flight", value: (r) => int(r.in_flight), numeric: true },
  { label: "Queue", value: (r) => int(r.queue_depth), numeric: true },
  { label: "Free KV blocks", value: (r) => int(r.kv_free_blocks), numeric: true },
  { label: "Served", value: (r) => int(r.served), numeric: true },
  { label: "Last seen", value: (r) => ago(r.last_seen) },
  { label: "Version", value: (r) => r.version },
];

export function replicasSection(api: Api): Section {
  const body = h("div");
  const n = notice(body);
  const el = h("section", {}, heading("Replicas"), n.el, body);
  let timer: number | undefined;
  const load = (first: boolean) => {
    if (first) n.loading();
    api.get<ReplicaList>("/v1/admin/replicas").then(
      (list) => {
        replace(
          body,
          dataTable(
            `Live replicas (${list.data.length}), refreshed every ${REFRESH_MS / 1000} s`,
            columns,
            list.data,
            "No replica has registered. Requests go to the TIERS backends of wrangler.toml.",
          ),
        );
        n.clear();
      },
      (err: unknown) => n.error(err),
    );
  };
  const tick = () => {
    // Stop polling once another section replaced this one.
    if (!el.isConnected) {
      timer = undefined;
      return;
    }
    load(false);
    timer = window.setTimeout(tick, REFRESH_MS);
  };
  return {
    id: "replicas",
    label: "Replicas",
    el,
    show() {
      load(true);
      if (timer !== undefined) window.clearTimeout(timer);
      timer = window.setTimeout(tick, REFRESH_MS);
    },
  };
}
