/**
 * The key's batches (GET /v1/batches): status, request counts, created and finished times, the output and
 * error files to download, and a Cancel button for a batch still running. Files are fetched with the key
 * (a plain link would carry no Authorization header) and handed to the browser as a download.
 */
import type { Api } from "../api";
import { button, h, replace } from "../dom";
import { dateTime, int } from "../format";
import { notice } from "../notice";
import { heading, type Section } from "../shell";
import { type Column, dataTable } from "../table";
import type { Batch, BatchList } from "../types";

const RUNNING = ["validating", "in_progress"];
const finishedAt = (b: Batch) => b.completed_at ?? b.failed_at ?? b.expired_at ?? b.cancelled_at;

export function batchesSection(api: Api, onAuthError: (e: unknown) => void): Section {
  const body = h("div");
  const n = notice(body);
  const fail = (err: unknown) => {
    n.error(err);
    onAuthError(err);
  };

  const download = async (fileId: string, name: string) => {
    const res = await api.raw(`/v1/files/${encodeURIComponent(fileId)}/content`, { method: "GET" });
    const url = URL.createObjectURL(await res.blob());
    const a = h("a", { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  };
  const fileButton = (b: Batch, fileId: string | null, kind: "output" | "errors") =>
    fileId
      ? button(
          kind === "output" ? "Output" : "Errors",
          () => void download(fileId, `${b.id}_${kind}.jsonl`).catch(fail),
          { "aria-label": `Download the ${kind} file of ${b.id}` },
        )
      : null;

  const columns: Column<Batch>[] = [
    { label: "Batch", value: (b) => h("code", {}, b.id) },
    { label: "Endpoint", value: (b) => b.endpoint },
    { label: "Status", value: (b) => b.status },
    { label: "Lines", value: (b) => int(b.request_counts.total), numeric: true },
    { label: "Completed", value: (b) => int(b.request_counts.completed), numeric: true },
    { label: "Failed", value: (b) => int(b.request_counts.failed), numeric: true },
    { label: "Created (UTC)", value: (b) => dateTime(b.created_at * 1000) },
    { label: "Finished (UTC)", value: (b) => (finishedAt(b) === null ? "" : dateTime(finishedAt(b)! * 1000)) },
    {
      label: "Files",
      value: (b) =>
        h("span", {}, fileButton(b, b.output_file_id, "output"), " ", fileButton(b, b.error_file_id, "errors")),
    },
    {
      label: "Action",
      value: (b) =>
        RUNNING.includes(b.status)
          ? button(
              "Cancel",
              () => void api.send("POST", `/v1/batches/${encodeURIComponent(b.id)}/cancel`).then(load, fail),
              { "aria-label": `Cancel ${b.id}` },
            )
          : null,
    },
  ];

  function load(): void {
    n.loading();
    api.get<BatchList>("/v1/batches?limit=100").then((page) => {
      replace(body, dataTable("Batches", columns, page.data, "No batches yet."));
      n.clear();
    }, fail);
  }

  const el = h(
    "section",
    {},
    heading("Batches"),
    h(
      "p",
      { class: "toolbar" },
      "Your last 100 batches, newest first. Batch lines cost half the interactive price. ",
      button("Refresh", load),
    ),
    n.el,
    body,
  );
  return { id: "batches", label: "Batches", el, show: load };
}
