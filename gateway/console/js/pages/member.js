// @ts-check
// One member: balance, pending, held, lots by expiry, tier and progress, caps left today,
// history with the reason for every change and every event's explanation; adjust points
// with a reason; blacklist and unblacklist.
import { api, get } from "../api.js";
import { card, errorText, h, table } from "../dom.js";
import { number, t, when } from "../i18n.js";

function explain(transfer) {
  const m = transfer.metadata || {};
  const parts = [transfer.reason_code];
  if (m.note) parts.push(`“${m.note}”`);
  if (m.operator) parts.push(`(${m.operator})`);
  if (m.rule_id) parts.push(m.rule_id);
  return parts.filter(Boolean).join(" ");
}

function outcome(event) {
  const o = event.outcome;
  const reasons = o.awards.map((a) => `${a.rule_id}: ${number(a.points)}${a.capped_by ? ` (${a.capped_by})` : ""}${a.reason ? ` ${a.reason}` : ""}`);
  return [o.decision, ...o.risk_reasons, ...reasons].join(" · ");
}

async function show(root, id, form) {
  const path = `/v1/admin/members/${encodeURIComponent(id)}`;
  const [wallet, detail, history, events, blacklist] = await Promise.all([
    get(`${path}/wallet`), get(`${path}?expiring_within_days=3660`),
    get(`${path}/history?page_size=50`), get(`${path}/events?page_size=50`),
    get("/v1/admin/blacklist"),
  ]);
  const listed = blacklist.entries.some((e) => e.kind === "USER" && e.value === id);
  const points = wallet.points || {};
  const amount = h("input", { type: "number", name: "points", placeholder: t("amount") });
  const note = h("input", { name: "note", placeholder: t("note"), maxlength: 500 });
  const message = h("p", { class: "error", role: "alert" });
  async function act(call) {
    try {
      await call();
      await show(root, id, form);
    } catch (error) {
      message.textContent = errorText(error);
    }
  }
  const adjust = () => act(() => api("POST", `${path}/adjustments`, { points: Number(amount.value), note: note.value }));
  const block = () => act(() => (listed
    ? api("DELETE", `/v1/admin/blacklist/USER/${encodeURIComponent(id)}`)
    : api("POST", "/v1/admin/blacklist", { kind: "USER", value: id, reason: note.value || "console" })));
  const tier = wallet.tier;
  root.replaceChildren(form,
    h("div", { class: "kpis", id: "member-points" },
      ...["available", "pending", "held", "lifetimeEarned"].map((key) => h("div", { class: "kpi", "data-kpi": key },
        h("div", { class: "label" }, t(key)),
        h("div", { class: "value" }, number(points[key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)]))))),
    card("tier", tier ? `${tier.name} (${number(tier.points_12m)}) · ${t("progress")}: ${tier.next_tier_id ? number(tier.points_to_next) : "—"}` : "—",
      h("p", {}, `${t("checkIn")}: ${wallet.check_in ? wallet.check_in.streak : "—"}`)),
    card("capsToday", table([["rule", (c) => c.rule_id], ["used", (c) => number(c.earned_today), "num"],
      ["limit", (c) => number(c.daily_cap), "num"], ["remaining", (c) => number(c.remaining_today), "num"]], wallet.caps_today)),
    card("expiring", table([["date", (e) => e.date], ["points", (e) => number(e.amount), "num"]], detail.expiring)),
    card("adjust", h("div", { class: "row" }, amount, note,
      h("button", { onclick: adjust, name: "adjust" }, t("adjust")),
      h("button", { class: "secondary", onclick: block, name: "blacklist" }, t(listed ? "unblacklist" : "blacklist"))), message),
    card("history", table([["when", (x) => when(x.created_at)], ["kind", (x) => x.kind],
      ["amount", (x) => number(x.amount), "num"], ["reason", explain]], history.transfers)),
    card("eventList", table([["when", (e) => when(e.occurred_at)], ["type", (e) => e.type],
      ["points", (e) => number(e.outcome.total_points), "num"], ["reason", outcome],
      ["review", (e) => (e.review === "UNSPECIFIED" ? "" : e.review)]], events.events)));
}

export async function member(root, id = "") {
  const input = h("input", { name: "member", value: id, placeholder: t("memberId") });
  const form = h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); location.hash = `#/member/${encodeURIComponent(input.value.trim())}`; } },
    input, h("button", { type: "submit" }, t("search")));
  if (!id) { root.replaceChildren(form); return; }
  await show(root, id, form);
}
