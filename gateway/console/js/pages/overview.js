// @ts-check
// What needs the operator now: the review backlog, failing or disabled webhooks, budgets near
// their limit, items low on stock, campaigns ending soon and the last expiry run. Each panel
// loads on its own and links to the page where it is dealt with.
import { get } from "../api.js";
import { h, panel, show, table } from "../dom.js";
import { label, number, percent, t, when } from "../i18n.js";

const LOW_STOCK = 10;
const SOON_MS = 7 * 86400000;

const link = (href) => h("a", { href }, t("open"));
const clear = () => h("p", { class: "ok" }, t("allClear"));

async function backlog() {
  const { total_size: total } = await get("/v1/admin/reviews?page_size=1");
  return [h("p", { class: "count", "data-count": "reviews" }, number(total)), link("#/reviews")];
}

async function webhooks() {
  const { subscriptions } = await get("/v1/admin/webhooks/subscriptions");
  const failing = subscriptions.filter((s) => !s.enabled || s.pending_deliveries > 0);
  if (!failing.length) return clear();
  return table([["id", (s) => h("a", { href: `#/webhooks/${s.subscription_id}` }, s.subscription_id)],
    ["status", (s) => (s.enabled ? t("enabled") : t("disabled"))],
    ["pending", (s) => number(s.pending_deliveries), "num"]], failing, "webhooks");
}

async function budgets() {
  const near = (await get("/v1/admin/budgets")).budgets
    .filter((b) => b.limit_points && b.used_points >= 0.8 * b.limit_points);
  if (!near.length) return clear();
  return [table([["budget", (b) => b.budget.budget_id], ["period", (b) => label("period", b.budget.period)],
    ["used", (b) => percent(b.used_points, b.limit_points), "num"]], near, "budgets"), link("#/config/budgets")];
}

async function stock() {
  const low = (await get("/v1/admin/items?page_size=500")).items
    .filter((i) => i.enabled && !i.unlimited_stock && i.stock <= LOW_STOCK);
  if (!low.length) return clear();
  return [table([["id", (i) => i.item_id], ["title_", (i) => i.title], ["stock", (i) => number(i.stock), "num"]],
    low, "low-stock"), link("#/mall")];
}

async function ending() {
  const now = Date.now();
  const soon = (await get("/v1/admin/campaigns")).campaigns.filter((c) => c.enabled && c.end_at
    && Date.parse(c.end_at) > now && Date.parse(c.end_at) - now < SOON_MS);
  if (!soon.length) return clear();
  return [table([["campaign", (c) => c.campaign_id], ["when", (c) => when(c.end_at)]], soon, "campaigns"),
    link("#/config/campaigns")];
}

async function expiry() {
  const run = (await get(`/v1/admin/reports/ledger?start=${encodeURIComponent(new Date().toISOString())}`)).last_expiry_run;
  if (!run) return h("p", { class: "muted" }, t("none"));
  return h("p", {}, `${when(run.finish_at)} · ${t("expired")}: ${number(run.points_expired)} · ${t("membersAffected")}: ${number(run.members_affected)}`);
}

export async function overview(root) {
  await show(root, h("div", { class: "needs" },
    panel("reviewBacklog", backlog), panel("failingWebhooks", webhooks), panel("budgetsNear", budgets),
    panel("lowStock", stock), panel("endingSoon", ending), panel("lastExpiryRun", expiry)));
}
