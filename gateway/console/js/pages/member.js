// @ts-check
// One member: balance, pending, held, lots by expiry, tier and progress, caps left today,
// history with the reason for every change and every event's explanation (base points, streak
// day, what campaigns and tier added, what cut it, until when it is pending); adjust points
// with a reason; blacklist and unblacklist. An id never seen is "not found", not a zero balance.
import { api, get } from "../api.js";
import { card, confirmed, errorText, h, table } from "../dom.js";
import { cutBy, day, fill, label, number, t, when } from "../i18n.js";

function explain(transfer) {
  const m = transfer.metadata || {};
  const parts = [label("reasonCode", transfer.reason_code)];
  if (m.note) parts.push(`“${m.note}”`);
  if (m.operator) parts.push(`(${m.operator})`);
  if (m.rule_id) parts.push(m.rule_id);
  if (transfer.matures_at && Date.parse(transfer.matures_at) > Date.now()) parts.push(`· ${t("pendingUntil")} ${when(transfer.matures_at)}`);
  return parts.filter(Boolean).join(" ");
}

// One award in words: "daily-check-in: 25 = base 5 (streak day 1) + 20 from campaigns
// (welcome-bonus)", with what cut it and until when it is pending.
function award(a) {
  const parts = [`${a.rule_id}: ${number(a.points)}`];
  const extra = a.campaign_points || 0;
  if (a.base_points !== a.points || extra) parts.push(`= ${t("basePoints")} ${number(a.base_points)}`);
  if (a.streak_day) parts.push(`(${t("streakDay")} ${a.streak_day})`);
  const campaigns = extra - (a.tier_points || 0);
  if (campaigns) parts.push(`+ ${number(campaigns)} ${t("campaignExtra")} (${(a.campaign_ids || []).join(", ")})`);
  if (a.tier_points) parts.push(`+ ${number(a.tier_points)} ${t("tierExtraShort")}`);
  if (a.capped_by) parts.push(`· ${t("cappedBy")} ${cutBy(a.capped_by)}`);
  if (a.reason) parts.push(`· ${label("award", a.reason)}`);
  if (a.pending) parts.push(`· ${t("pendingUntil")} ${when(a.matures_at)}`);
  if (a.in_review) parts.push(`· ${t("inReviewShort")}`);
  if (a.experiment_id) parts.push(`· ${fill("armOf", { arm: a.arm_id, experiment: a.experiment_id })}`);
  return parts.join(" ");
}

function outcome(event) {
  const o = event.outcome;
  return h("div", {}, h("div", {}, [label("decision", o.decision), ...o.risk_reasons.map((r) => label("risk", r))].join(" · ")),
    ...o.awards.map((a) => h("div", { class: "award" }, award(a))));
}

async function show(root, id, form) {
  const path = `/v1/admin/members/${encodeURIComponent(id)}`;
  const [wallet, detail, history, events, blacklist] = await Promise.all([
    get(`${path}/wallet`), get(`${path}?expiring_within_days=3660`),
    get(`${path}/history?page_size=50`), get(`${path}/events?page_size=50`),
    get("/v1/admin/blacklist"),
  ]);
  if (!history.transfers.length && !events.events.length) {
    root.replaceChildren(form, card(null, h("h2", {}, id), h("p", { role: "alert", class: "error", id: "not-found" }, t("memberNotFound"))));
    return;
  }
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
  const adjust = confirmed("confirmAdjust", () => act(() => api("POST", `${path}/adjustments`, { points: Number(amount.value), note: note.value })));
  const unlist = () => act(() => api("DELETE", `/v1/admin/blacklist/USER/${encodeURIComponent(id)}`));
  const block = confirmed("confirmBlacklist", () => act(() => api("POST", "/v1/admin/blacklist", { kind: "USER", value: id, reason: note.value || "console" })));
  const tier = wallet.tier;
  root.replaceChildren(form, h("h1", { id: "member-id" }, id),
    h("div", { class: "kpis", id: "member-points" },
      ...["available", "pending", "held", "lifetimeEarned"].map((key) => h("div", { class: "kpi", "data-kpi": key },
        h("div", { class: "label" }, t(key)),
        h("div", { class: "value" }, number(points[key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)]))))),
    card("tier", tier ? `${tier.name} (${number(tier.points_12m)}) · ${t("progress")}: ${tier.next_tier_id ? number(tier.points_to_next) : "—"}` : "—",
      h("p", {}, `${t("checkIn")}: ${wallet.check_in ? wallet.check_in.streak : "—"}`)),
    card("capsToday", table([["rule", (c) => c.rule_id], ["used", (c) => number(c.earned_today), "num"],
      ["limit", (c) => number(c.daily_cap), "num"], ["remaining", (c) => number(c.remaining_today), "num"]], wallet.caps_today, "caps")),
    card("expiring", table([["date", (e) => day(e.date)], ["points", (e) => number(e.amount), "num"]], detail.expiring, "expiring")),
    h("div", { "data-needs": "adjust" }, card("adjust", h("div", { class: "row" }, amount, note,
      h("button", { onclick: adjust, name: "adjust" }, t("adjust")),
      h("button", { class: "secondary", onclick: listed ? unlist : block, name: "blacklist", "data-needs": "program" }, t(listed ? "unblacklist" : "blacklist"))), message)),
    card("history", table([["when", (x) => when(x.created_at)], ["kind", (x) => label("transfer", x.kind)],
      ["amount", (x) => number(x.amount), "num"], ["reason", explain]], history.transfers, `history-${id}`)),
    card("eventList", table([["when", (e) => when(e.occurred_at)], ["type", (e) => label("event", e.type)],
      ["points", (e) => number(e.outcome.total_points), "num"], ["reason", outcome],
      ["review", (e) => label("review", e.review)]], events.events, `events-${id}`)));
}

export async function member(root, id = "") {
  const input = h("input", { name: "member", value: id, placeholder: t("memberId") });
  const form = h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); location.hash = `#/member/${encodeURIComponent(input.value.trim())}`; } },
    input, h("button", { type: "submit" }, t("search")));
  if (!id) { root.replaceChildren(form); return; }
  await show(root, id, form);
}
