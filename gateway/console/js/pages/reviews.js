// @ts-check
// The review queue: events decided REVIEW with their signals, approved or rejected in bulk.
import { api, get } from "../api.js";
import { card, errorText, h, table } from "../dom.js";
import { number, t, when } from "../i18n.js";

export async function reviews(root) {
  const message = h("p", { class: "error", role: "alert" });
  async function load() {
    const queue = (await get("/v1/admin/reviews?page_size=200")).reviews;
    const boxes = new Map();
    async function decide(decision) {
      const chosen = queue.filter((r) => boxes.get(r).checked);
      try {
        for (const r of chosen) {
          await api("POST", `/v1/admin/reviews/${encodeURIComponent(r.user_id)}/${encodeURIComponent(r.event_id)}/${decision}`);
        }
        message.textContent = "";
      } catch (error) {
        message.textContent = errorText(error);
      }
      await load();
    }
    root.replaceChildren(card("reviews",
      table([
        ["", (r) => { const box = h("input", { type: "checkbox", "data-event": r.event_id }); boxes.set(r, box); return box; }],
        ["user", (r) => h("a", { href: `#/member/${encodeURIComponent(r.user_id)}` }, r.user_id)],
        ["event", (r) => r.event_id], ["type", (r) => r.event_type],
        ["reasons", (r) => r.reasons.join(", ")], ["points", (r) => number(r.points), "num"],
        ["recorded", (r) => when(r.record_at || r.recorded_at)],
      ], queue),
      h("div", { class: "row" },
        h("button", { onclick: () => decide("approve"), name: "approve" }, t("approve")),
        h("button", { class: "secondary", onclick: () => decide("reject"), name: "reject" }, t("reject"))),
      message));
  }
  await load();
}
