/** Data tables: a caption, header cells with scope, numeric columns right-aligned, scrollable on phones. */
import { h, type Child } from "./dom";

export interface Column<R> {
  label: string;
  value: (row: R) => Child;
  numeric?: boolean;
}

export function dataTable<R>(caption: string, columns: Column<R>[], rows: R[], empty = "Nothing yet."): HTMLDivElement {
  const head = h(
    "tr",
    {},
    ...columns.map((c) => h("th", { scope: "col", class: c.numeric ? "num" : undefined }, c.label)),
  );
  const body = rows.length
    ? rows.map((r) => h("tr", {}, ...columns.map((c) => h("td", { class: c.numeric ? "num" : undefined }, c.value(r)))))
    : [h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, empty))];
  // A focusable region so keyboard users can scroll a wide table sideways.
  return h(
    "div",
    { class: "table-wrap", role: "region", "aria-label": caption, tabindex: 0 },
    h("table", {}, h("caption", {}, caption), h("thead", {}, head), h("tbody", {}, ...body)),
  );
}
