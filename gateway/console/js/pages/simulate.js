// @ts-check
// Simulate before publishing: draft rules and campaigns against pasted or generated events,
// points and cost per rule and campaign, the program in force today beside the draft.
import { api } from "../api.js";
import { card, errorText, h, table } from "../dom.js";
import { money, number, t } from "../i18n.js";

// Each member checks in once a day, 24 hours apart and the last a minute ago (never in the
// future, whatever the hour), so streaks build as they would.
function generated(users, checkIns) {
  const events = [];
  const last = Date.now() - 60000;
  for (let u = 0; u < users; u++) {
    for (let c = 0; c < checkIns; c++) {
      const occurred = new Date(last - (checkIns - 1 - c) * 86400000).toISOString();
      events.push({ event_id: `sim-${u}-${c}`, user_id: `sim-user-${u}`, type: "CHECK_IN", occurred_at: occurred });
    }
  }
  return events;
}

// One table of lines (by rule or campaign): today's figure, the draft's, the difference.
function compared(key, today, draft) {
  const ids = [...new Set([...today.map((r) => r.id), ...draft.map((r) => r.id)])].sort();
  const find = (list, id) => list.find((r) => r.id === id) || { points: 0, cost: null };
  return table([
    [key, (id) => id],
    ["today", (id) => number(find(today, id).points), "num"],
    ["draft", (id) => number(find(draft, id).points), "num"],
    ["difference", (id) => number(find(draft, id).points - find(today, id).points), "num"],
    ["cost", (id) => money(find(draft, id).cost), "num"],
  ], ids);
}

export async function simulate(root) {
  const rules = h("textarea", { rows: 8, name: "draft_rules" }, "[]");
  const campaigns = h("textarea", { rows: 5, name: "draft_campaigns" }, "[]");
  const events = h("textarea", { rows: 8, name: "events" }, JSON.stringify(generated(3, 2), null, 2));
  const users = h("input", { type: "number", min: 1, max: 100, value: 3, name: "users" });
  const times = h("input", { type: "number", min: 1, max: 7, value: 2, name: "times" });
  const days = h("input", { type: "number", min: 1, max: 30, value: 7, name: "replay_days" });
  const result = h("div", { id: "simulation" });
  // With `replay`: the events recorded in the last days, replayed as fresh members.
  async function run(replay) {
    try {
      const drafts = { draft_rules: JSON.parse(rules.value), draft_campaigns: JSON.parse(campaigns.value) };
      const reply = await api("POST", "/v1/admin/simulations", replay
        ? { ...drafts, replay_days: Number(days.value) }
        : { ...drafts, events: JSON.parse(events.value) });
      result.replaceChildren(h("p", { class: "muted" }, `${t("eventList")}: ${number(reply.results.length)}`),
        reply.capped ? h("p", { class: "notice", id: "capped" }, t("replayCapped")) : "", card("total",
        table([
          ["", (row) => t(row[0])],
          ["points", (row) => number(row[1].total_points), "num"],
          ["cost", (row) => money(row[1].cost), "num"],
        ], [["today", reply.current], ["draft", reply.draft]])),
      card("rules", compared("rule", reply.current.by_rule, reply.draft.by_rule)),
      card("campaigns", compared("campaign", reply.current.by_campaign, reply.draft.by_campaign)));
    } catch (error) {
      result.replaceChildren(h("p", { class: "error", role: "alert" },
        errorText(error)));
    }
  }
  root.replaceChildren(
    card("draftRules", rules), card("draftCampaigns", campaigns),
    card("events", h("div", { class: "row" }, h("label", {}, t("usersLabel"), users), "×", h("label", {}, t("timesLabel"), times), h("button", {
      class: "secondary", onclick: () => { events.value = JSON.stringify(generated(+users.value, +times.value), null, 2); },
    }, t("generate"))), events),
    h("div", { class: "row" }, h("button", { onclick: () => run(false), name: "run", "data-needs": "simulate" }, t("run")),
      t("replayHelp"), h("label", {}, t("daysLabel"), days), h("button", { class: "secondary", onclick: () => run(true), name: "replay", "data-needs": "simulate" }, t("replay"))),
    result);
}
