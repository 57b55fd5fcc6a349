// @ts-check
// The review queue: events decided REVIEW with their signals (naming the device or IP they
// share), how many wait in all, a page at a time; approved or rejected in bulk.
import { api, get } from "../api.js";
import { card, confirmed, errorText, h, pages, show, table } from "../dom.js";
import { label, number, t, when } from "../i18n.js";

const PAGE = 100;
const PARALLEL = 8; // decisions in flight at once: a bulk decision is not one request a row

// Every decision, a few at a time; the first failure is reported after the rest ran.
async function decideAll(chosen, decision) {
  const queue = [...chosen];
  /** @type {any[]} */
  const failures = [];
  const worker = async () => {
    for (let r = queue.shift(); r; r = queue.shift()) {
      try {
        await api("POST", `/v1/admin/reviews/${encodeURIComponent(r.user_id)}/${encodeURIComponent(r.event_id)}/${decision}`);
      } catch (error) {
        failures.push(error);
      }
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  if (failures.length) throw failures[0];
}

function signals(r) {
  return r.reasons.map((reason) => {
    const which = reason.endsWith("DEVICE") && r.device_id ? ` (${t("device")} ${r.device_id})`
      : reason.endsWith("_IP") && r.ip ? ` (${t("ip")} ${r.ip})` : "";
    return `${label("risk", reason)}${which}`;
  }).join(", ");
}

export async function reviews(root) {
  const message = h("p", { class: "error", role: "alert" });
  const tokens = [""]; // the token of each page shown so far
  async function load(index = tokens.length - 1, note = "") {
    const reply = await get(`/v1/admin/reviews?page_size=${PAGE}&page_token=${encodeURIComponent(tokens[index])}`);
    tokens.length = index + 1;
    const boxes = new Map();
    const all = h("input", { type: "checkbox", name: "select-all", onchange: () => { for (const box of boxes.values()) box.checked = all.checked; } });
    const decide = async (decision) => {
      const chosen = reply.reviews.filter((r) => boxes.get(r).checked);
      try {
        await decideAll(chosen, decision);
        await load(index, `${t("decided")}: ${number(chosen.length)}`);
      } catch (error) {
        await load(index);
        message.textContent = errorText(error);
      }
    };
    message.textContent = "";
    await show(root, card("reviews",
      h("p", {}, h("strong", { id: "review-total" }, number(reply.total_size)), ` ${t("waitingTotal")}`),
      note ? h("p", { class: "ok", role: "status" }, note) : null,
      h("label", {}, all, t("selectAll")),
      table([
        ["", (r) => { const box = h("input", { type: "checkbox", "data-event": r.event_id }); boxes.set(r, box); return box; }],
        ["user", (r) => h("a", { href: `#/member/${encodeURIComponent(r.user_id)}` }, r.user_id)],
        ["event", (r) => r.event_id], ["type", (r) => label("event", r.event_type)],
        ["reasons", signals], ["points", (r) => number(r.points), "num"],
        ["recorded", (r) => when(r.record_at || r.recorded_at)],
      ], reply.reviews, "reviews"),
      h("div", { class: "row", "data-needs": "program" },
        h("button", { onclick: () => decide("approve"), name: "approve" }, t("approve")),
        h("button", { class: "secondary", onclick: confirmed("confirmReject", () => decide("reject")), name: "reject" }, t("reject"))),
      pages(tokens, index, reply.next_page_token, load), message));
  }
  await load();
}
