// @ts-check
// Members: find them by id prefix, by points available and by inactivity (points that have
// not moved since a date), a page at a time; each opens the member's page.
import { get } from "../api.js";
import { card, h, pages, panel, show, table } from "../dom.js";
import { number, t, when } from "../i18n.js";

const PAGE = 100;

export async function members(root) {
  const prefix = h("input", { name: "prefix", maxlength: 128, placeholder: t("memberId") });
  const minimum = h("input", { name: "min_available", type: "number", min: 0, value: 0 });
  const since = h("input", { name: "inactive_since", type: "date" });
  const results = h("div");
  const tokens = [""];
  const query = (index) => {
    const q = new URLSearchParams({ page_size: String(PAGE), page_token: tokens[index], prefix: prefix.value.trim(), min_available: minimum.value || "0" });
    if (since.value) q.set("inactive_since", `${since.value}T00:00:00Z`);
    return q;
  };
  const load = (index = 0) => show(results, panel("found", async () => {
    const reply = await get(`/v1/admin/segments?${query(index)}`);
    tokens.length = index + 1;
    return [table([
      ["id", (m) => h("a", { href: `#/member/${encodeURIComponent(m.user_id)}` }, m.user_id)],
      ["available", (m) => number(m.available), "num"], ["pending", (m) => number(m.pending), "num"],
      ["held", (m) => number(m.held), "num"], ["lastMoved", (m) => when(m.changed_at)],
    ], reply.members, "members"),
    pages(tokens, index, reply.next_page_token, load)];
  }));
  await show(root, card("members",
    h("form", { class: "row", onsubmit: () => load(0) },
      h("label", {}, t("idPrefix"), prefix), h("label", {}, t("minAvailable"), minimum),
      h("label", {}, t("inactiveSince"), since), h("button", { type: "submit", name: "search" }, t("search")))), results);
  await load(0);
}
