// @ts-check
// The economy: liability (in points and in money), flows per day, rates, cost per rule and
// campaign, budgets. Every figure comes from the ledger's report (GET /v1/admin/reports/ledger)
// or the issuance report (GET /v1/admin/reports/issuance), so the page agrees with the ledger
// to the point; budgets load on their own.
import { get } from "../api.js";
import { lineChart } from "../chart.js";
import { card, h, panel, show, table } from "../dom.js";
import { label, money, number, percent, t } from "../i18n.js";

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

// The period as the API's instants; an error naming the problem when the dates make none.
function period(from, to) {
  const start = Date.parse(`${from}T00:00:00Z`), last = Date.parse(`${to}T00:00:00Z`);
  if (Number.isNaN(start) || Number.isNaN(last) || start > last) throw new Error(t("badDates"));
  const query = `start=${encodeURIComponent(new Date(start).toISOString())}&end=${encodeURIComponent(new Date(last + 86400000).toISOString())}`;
  return query;
}

async function figures(from, to) {
  const query = period(from, to);
  const [ledger, issuance] = await Promise.all([
    get(`/v1/admin/reports/ledger?${query}&by_day=true`),
    get(`/v1/admin/reports/issuance?${query}`),
  ]);
  const ppm = issuance.issuance_ratio_ppm;
  const value = (points) => money({
    amount_minor: Math.floor((points * 100) / (issuance.points_per_major_unit || 100)), currency: issuance.cost?.currency,
  });
  return [
    h("div", { class: "kpis" },
      kpi("liability", number(ledger.outstanding_liability)),
      kpi("liabilityValue", value(ledger.outstanding_liability)),
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
    card("perDay", ...lineChart(everyDay(ledger.days, from, to), [
      [t("issued"), "issued"], [t("redeemed"), "spent"], [t("expired"), "expired"], [t("reversed"), "reversed"],
    ], t("axisPoints"))),
    card("byRule", table([
      ["rule", (r) => r.id], ["points", (r) => number(r.points), "num"], ["cost", (r) => money(r.cost), "num"],
    ], issuance.by_rule, "cost-by-rule")),
    card("byCampaign", h("p", { class: "muted" }, t("campaignCostNote")), table([
      ["campaign", (r) => r.id], ["points", (r) => number(r.points), "num"], ["cost", (r) => money(r.cost), "num"],
    ], issuance.by_campaign, "cost-by-campaign"), h("p", { class: "muted" },
      `${t("tierExtra")}: ${number(issuance.tier_points)}`)),
  ];
}

// Each budget's use against the limit in force, in points and in money, as a share.
async function budgets() {
  return table([
    ["budget", (b) => b.budget.budget_id], ["period", (b) => label("period", b.budget.period)],
    ["used", (b) => `${number(b.used_points)} (${money(b.used_cost)})`, "num"],
    ["limit", (b) => [b.budget.points_limit ? number(b.budget.points_limit) : "", b.budget.money_limit?.amount_minor
      ? money(b.budget.money_limit) : ""].filter(Boolean).join(" · "), "num"],
    ["", (b) => percent(b.used_points, b.limit_points), "num"],
  ], (await get("/v1/admin/budgets")).budgets, "budgets");
}

export async function economy(root) {
  const from = h("input", { type: "date", value: isoDay(-29), name: "from" });
  const to = h("input", { type: "date", value: isoDay(0), name: "to" });
  const body = h("div");
  const load = () => show(body, panel("economy", () => figures(from.value, to.value), { "data-panel-kind": "figures" }),
    panel("budgets", budgets));
  await show(root,
    h("div", { class: "row" }, h("label", {}, t("from"), from), h("label", {}, t("to"), to),
      h("button", { onclick: load, id: "refresh" }, t("refresh"))),
    body);
  await load();
}
