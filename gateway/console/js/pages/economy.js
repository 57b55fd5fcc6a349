// @ts-check
// The home page: liability, flows per day, rates, cost per rule and campaign, budgets. Every
// figure comes from the ledger's report (GET /v1/admin/reports/ledger) or the issuance report
// (GET /v1/admin/reports/issuance), so the page agrees with the ledger to the point.
import { get } from "../api.js";
import { lineChart } from "../chart.js";
import { card, h, table } from "../dom.js";
import { money, number, percent, t } from "../i18n.js";

function isoDay(offset) {
  const day = new Date(Date.now() + offset * 86400000);
  return day.toISOString().slice(0, 10);
}

// Every day of the period, quiet days as zeros, so the lines are continuous.
function everyDay(days, from, to) {
  const known = new Map(days.map((d) => [d.date, d]));
  const first = [from, ...days.map((d) => d.date)].sort()[0];
  const last = [to, ...days.map((d) => d.date)].sort().at(-1);
  const filled = [];
  for (let day = Date.parse(first); day <= Date.parse(last); day += 86400000) {
    const date = new Date(day).toISOString().slice(0, 10);
    filled.push(known.get(date) || { date, issued: 0, spent: 0, expired: 0, reversed: 0 });
  }
  return filled;
}

function kpi(key, value) {
  return h("div", { class: "kpi", "data-kpi": key }, h("div", { class: "label" }, t(key)),
    h("div", { class: "value" }, value));
}

export async function economy(root) {
  const from = h("input", { type: "date", value: isoDay(-29), name: "from" });
  const to = h("input", { type: "date", value: isoDay(0), name: "to" });
  const body = h("div");
  async function load() {
    const start = `${from.value}T00:00:00Z`;
    const end = new Date(Date.parse(`${to.value}T00:00:00Z`) + 86400000).toISOString();
    const query = `start=${encodeURIComponent(start)}&end=${encodeURIComponent(end)}`;
    const [ledger, issuance, budgets] = await Promise.all([
      get(`/v1/admin/reports/ledger?${query}&by_day=true`),
      get(`/v1/admin/reports/issuance?${query}`),
      get("/v1/admin/budgets"),
    ]);
    const ppm = issuance.issuance_ratio_ppm;
    body.replaceChildren(
      h("div", { class: "kpis" },
        kpi("liability", number(ledger.outstanding_liability)),
        kpi("issued", number(ledger.issued)),
        kpi("redeemed", number(ledger.spent)),
        kpi("expired", number(ledger.expired)),
        kpi("reversed", number(ledger.reversed)),
        kpi("inReview", number(issuance.points_in_review)),
        kpi("breakage", percent(ledger.expired, ledger.issued)),
        kpi("redemptionRate", percent(ledger.spent, ledger.issued)),
        kpi("issuanceRatio", ppm ? percent(ppm, 1000000) : "—"),
        kpi("cost", money(issuance.cost)),
        kpi("purchases", money(issuance.purchases))),
      card("perDay", ...lineChart(everyDay(ledger.days, from.value, to.value), [
        [t("issued"), "issued"], [t("redeemed"), "spent"], [t("expired"), "expired"],
        [t("reversed"), "reversed"],
      ])),
      card("byRule", table([
        ["rule", (r) => r.id], ["points", (r) => number(r.points), "num"],
        ["cost", (r) => money(r.cost), "num"],
      ], issuance.by_rule)),
      card("byCampaign", table([
        ["campaign", (r) => r.id], ["points", (r) => number(r.points), "num"],
        ["cost", (r) => money(r.cost), "num"],
      ], issuance.by_campaign), h("p", { class: "muted" },
        `${t("tierExtra")}: ${number(issuance.tier_points)}`)),
      card("budgets", table([
        ["budget", (b) => b.budget.budget_id], ["period", (b) => b.period_key],
        ["used", (b) => number(b.used_points), "num"],
        ["limit", (b) => (b.budget.points_limit ? number(b.budget.points_limit) : money(b.budget.money_limit)), "num"],
        ["", (b) => (b.budget.points_limit ? percent(b.used_points, b.budget.points_limit) : ""), "num"],
      ], budgets.budgets)));
  }
  root.replaceChildren(
    h("div", { class: "row" }, t("from"), from, t("to"), to,
      h("button", { onclick: () => load(), id: "refresh" }, t("refresh"))),
    body);
  await load();
}
