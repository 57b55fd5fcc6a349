// @ts-check
// Experiments: every experiment with its arms and shares; one experiment's live results (each
// metric's mean per arm, and each arm's difference from the control with its interval, drawn
// as a chart per metric); draft one as JSON, start it, conclude it, or promote an arm's drafts
// to new rule and campaign versions.
import { api, get } from "../api.js";
import { intervalChart } from "../chart.js";
import { confirmed, failure, h, panel, show, table } from "../dom.js";
import { fill, label, money, number, t, when } from "../i18n.js";

// A draft to start from: a like worth 2 points for 45 % of members, a 10 % holdout, 28 days.
function template() {
  const end = new Date(Date.now() + 28 * 86_400_000).toISOString().replace(/\.\d+Z$/, "Z");
  const like = { rule_id: "like", kind: "ACTION", event_type: "LIKE", action: { points: 2 }, daily_cap: 10, enabled: true };
  return {
    name: "", description: "",
    arms: [
      { arm_id: "a", role: "CONTROL", share_bp: 4500 },
      { arm_id: "b", role: "TREATMENT", share_bp: 4500, rules: [like] },
      { arm_id: "h", role: "HOLDOUT", share_bp: 1000 },
    ],
    audience: "ALL", end_at: end, primary_metric: "EVENTS", event_types: ["LIKE"],
    confidence_percent: 95, min_days: 14, min_members: 500, adaptive: false, holdout_floor_bp: 1000, budget_points: 0,
  };
}

const percentOf = (bp) => `${number(bp / 100)}%`;
const STATUS_CLASS = { RUNNING: "ok", CONCLUDED: "muted", DRAFT: "" };

function editor(message, done) {
  const id = h("input", { name: "experiment_id", placeholder: t("experimentId") });
  const text = h("textarea", { name: "experiment", rows: 16 }, JSON.stringify(template(), null, 2));
  async function save() {
    try {
      const saved = await api("PUT", `/v1/admin/experiments/${encodeURIComponent(id.value.trim())}`, JSON.parse(text.value));
      location.hash = `#/experiments/${encodeURIComponent(saved.experiment_id)}`;
      await done();
    } catch (error) {
      message.replaceChildren(failure(error));
    }
  }
  return h("div", {}, h("label", {}, t("experimentId"), id), text, h("button", { name: "save-experiment", onclick: save }, t("save")));
}

function list(target) {
  return panel("experiments", async () => {
    const found = (await get("/v1/admin/experiments")).experiments;
    const box = h("div"), message = h("div");
    const reload = () => show(target, list(target));
    return [h("button", { class: "secondary", name: "new-experiment", "data-needs": "program", onclick: () => box.replaceChildren(editor(message, reload)) }, t("newExperiment")),
      box, message,
      table([
        ["id", (e) => h("a", { href: `#/experiments/${encodeURIComponent(e.experiment_id)}` }, e.experiment_id)],
        ["ruleName", (e) => e.name || ""],
        ["status", (e) => h("span", { class: STATUS_CLASS[e.status] ?? "" }, label("experimentStatus", e.status))],
        ["arms", (e) => e.arms.map((a) => `${a.arm_id} ${percentOf(a.share_bp)}`).join(" · ")],
        ["from", (e) => (e.start_at ? when(e.start_at) : "—")], ["to", (e) => when(e.end_at)],
        ["adaptive", (e) => t(e.adaptive ? "yes" : "no")],
      ], found, "experiments")];
  });
}

// What an arm changes: its draft rules and campaigns by id, or its role's meaning.
function changes(arm) {
  const drafts = [...(arm.rules || []).map((r) => r.rule_id), ...(arm.campaigns || []).map((c) => c.campaign_id)];
  return drafts.length ? drafts.join(", ") : t(arm.role === "HOLDOUT" ? "holdoutMeans" : "controlMeans");
}

function actions(experiment, message, reload) {
  const path = `/v1/admin/experiments/${encodeURIComponent(experiment.experiment_id)}`;
  const act = (call) => async () => {
    try {
      await call();
      await reload();
    } catch (error) {
      message.replaceChildren(failure(error));
    }
  };
  if (experiment.status === "DRAFT") {
    return [h("button", { name: "start", "data-needs": "program", onclick: act(() => api("POST", `${path}/start`)) }, t("startExperiment"))];
  }
  if (experiment.status !== "RUNNING") return [];
  return [
    h("button", { class: "secondary", name: "conclude", "data-needs": "program", onclick: confirmed("confirmConclude", act(() => api("POST", `${path}/conclude`))) }, t("concludeExperiment")),
    ...experiment.arms.filter((a) => a.role === "TREATMENT").map((a) =>
      h("button", { name: `promote-${a.arm_id}`, "data-needs": "admin", onclick: confirmed("confirmPromote", act(() => api("POST", `${path}/promote`, { arm_id: a.arm_id }))) },
        fill("promoteArm", { arm: a.arm_id }))),
  ];
}

// One metric: each arm's mean, and each other arm's difference from the control, in a table
// and a chart.
function metricCard(metric, experiment, results) {
  const lines = results.arms.map((arm) => ({ arm, line: arm.metrics.find((m) => m.metric === metric) }));
  const control = experiment.arms.find((a) => a.role === "CONTROL")?.arm_id;
  const compared = lines.filter(({ arm }) => arm.arm_id !== control);
  const rows = compared.map(({ arm, line }) => ({ name: arm.arm_id, difference: line.difference, low: line.low, high: line.high, significant: line.significant }));
  const round = (v) => number(Math.round(v * 1000) / 1000);
  return h("section", { class: "card", "data-metric": metric }, h("h3", {}, label("metric", metric)),
    table([
      ["arm", ({ arm }) => arm.arm_id], ["mean", ({ line }) => round(line.mean), "num"], ["members", ({ line }) => number(line.members), "num"],
      ["difference", ({ arm, line }) => (arm.arm_id === control ? "—" : `${round(line.difference)} [${round(line.low)}, ${round(line.high)}]`), "num"],
      ["significant", ({ arm, line }) => (arm.arm_id === control ? "—" : h("span", { class: line.significant ? "ok" : "muted" }, t(line.significant ? "yes" : "no")))],
    ], lines, `metric-${metric}`),
    rows.length ? intervalChart(rows, t("differenceFromControl")) : null);
}

function detail(root, experimentId) {
  return panel("experiment", async () => {
    const { experiment, results } = await get(`/v1/admin/experiments/${encodeURIComponent(experimentId)}`);
    const message = h("div");
    const reload = () => experiments(root, experimentId);
    const byArm = Object.fromEntries((results?.arms || []).map((a) => [a.arm_id, a]));
    const verdict = !results?.arms?.length ? t("noResultsYet")
      : results.enough_data ? t("enoughData") : fill("notEnoughData", { days: results.days, minDays: experiment.min_days, members: experiment.min_members });
    return [h("h2", {}, experiment.name || experiment.experiment_id),
      h("p", {}, `${label("experimentStatus", experiment.status)} · ${t("primaryMetric")}: ${label("metric", experiment.primary_metric)} · ${fill("confidenceOf", { n: experiment.confidence_percent })}`),
      h("div", { class: "row" }, actions(experiment, message, reload)), message,
      table([
        ["arm", (a) => a.arm_id], ["armRoleHead", (a) => label("armRole", a.role)], ["share", (a) => percentOf(a.share_bp), "num"],
        ["changes", changes], ["members", (a) => number(byArm[a.arm_id]?.members ?? 0), "num"],
        ["points", (a) => number(byArm[a.arm_id]?.points ?? 0), "num"],
        ["cost", (a) => (byArm[a.arm_id]?.points_cost ? money(byArm[a.arm_id].points_cost) : "—"), "num"],
        ["costPerActive", (a) => (byArm[a.arm_id]?.cost_per_incremental_active ? money(byArm[a.arm_id].cost_per_incremental_active) : "—"), "num"],
      ], experiment.arms, "arms"),
      h("p", { id: "verdict" }, verdict),
      experiment.budget_points ? h("p", { id: "budget" }, fill("budgetUsed", { used: number(results?.budget_used_points ?? 0), limit: number(experiment.budget_points) })) : null,
      results?.arms?.length ? results.arms[0].metrics.map((m) => metricCard(m.metric, experiment, results)) : null];
  });
}

export async function experiments(root, experimentId = "") {
  const listBox = h("div");
  const parts = [listBox];
  if (experimentId) parts.unshift(detail(root, experimentId));
  await show(root, ...parts);
  await show(listBox, list(listBox));
}
