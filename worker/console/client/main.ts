/** Console entry: the page says which console it is (data-page on <body>). */
import { h, replace } from "./dom";
import { startAdmin } from "./admin/app";
import { startUser } from "./user/app";

const root = document.getElementById("app");
if (root) {
  const page = document.body.dataset.page;
  if (page === "admin") startAdmin(root);
  else if (page === "user") startUser(root);
  else replace(root, h("p", { class: "error" }, "Unknown console page."));
}
