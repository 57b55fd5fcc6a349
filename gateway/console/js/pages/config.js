// @ts-check
// Rules, campaigns, tiers, cap groups and budgets: list, edit (the API's validation messages
// shown as they come), enable or disable, and every version with a diff between two.
import { api, get } from "../api.js";
import { fieldDiff } from "../diff.js";
import { definitionForm, FORMS } from "../forms.js";
import { card, errorText, h, notFound, table, toggleButton } from "../dom.js";
import { fill, label, money, number, percent, t, when } from "../i18n.js";

// kind: [list path, list field, id field, versioned, a template for a new one]
const KINDS = {
  rules: ["/v1/admin/rules", "rules", "rule_id", true,
    { kind: "ACTION", event_type: "LIKE", enabled: false, action: { points: 1 }, daily_cap: 5 }],
  campaigns: ["/v1/admin/campaigns", "campaigns", "campaign_id", true,
    { event_types: ["PURCHASE"], multiplier_percent: 200, enabled: false,
      start_at: new Date().toISOString(), end_at: new Date(Date.now() + 7 * 86400000).toISOString() }],
  tiers: ["/v1/admin/tiers", "tiers", "tier_id", true,
    { name: "Gold", min_points_12m: 5000, multiplier_percent: 150 }],
  "cap-groups": ["/v1/admin/cap-groups", "cap_groups", "name", false, { daily_cap: 10 }],
  budgets: ["/v1/admin/budgets", "budgets", "budget_id", true,
    { applies_to_all: true, period: "DAY", points_limit: 100000, over_budget: "CUT" }],
};
const TITLES = { rules: "rules", campaigns: "campaigns", tiers: "tiers", "cap-groups": "capGroups", budgets: "budgets" };

function unwrap(kind, item) { return kind === "budgets" ? item.budget : item; }

// What the edit form shows: the definition as listed (a cap group's rules are not its own).
function editable(kind, v) { return kind === "cap-groups" ? { daily_cap: v.daily_cap } : v; }

// Rules and campaigns edit as a form (or as JSON, on request); the rest as JSON.
function editor(kind, id, value, done) {
  const [path] = KINDS[kind];
  const idInput = h("input", { name: "id", value: id, placeholder: t("id"), disabled: id !== "" });
  const text = h("textarea", { rows: 14, name: "definition" }, JSON.stringify(value, null, 2));
  const [form, definition] = FORMS[kind] ? definitionForm(kind, value) : [null, null];
  const raw = h("details", { open: !form, ontoggle: () => { if (form && raw.open) text.value = JSON.stringify(definition(), null, 2); } },
    h("summary", {}, t("asJson")), text);
  const message = h("p", { class: "error", role: "alert" });
  async function save() {
    message.className = "error";
    try {
      const body = form && !raw.open ? definition() : JSON.parse(text.value);
      const key = idInput.value.trim();
      const answer = await api("PUT", `${path}/${encodeURIComponent(key)}`, body);
      message.className = "ok";
      message.textContent = t(answer.approval_id ? "sentForApproval" : "saved");
      await done();
    } catch (error) {
      message.textContent = errorText(error);
    }
  }
  return card(id ? "edit" : "new", h("div", { class: "row" }, h("label", {}, t("id"), idInput)), form, raw,
    h("div", { class: "row" }, h("button", { onclick: save, name: "save" }, t("save"))), message);
}

async function versions(kind, id, target) {
  const reply = await get(`/v1/admin/${kind}/${encodeURIComponent(id)}/versions?page_size=100`);
  const field = kind.slice(0, -1); // rules -> rule
  const list = reply.versions;
  const pick = (name, index) => h("select", { name },
    list.map((v, i) => h("option", { value: i, selected: i === index }, `v${v.version}`)));
  const older = pick("older", Math.min(1, list.length - 1)), newer = pick("newer", 0);
  const shown = h("div", { class: "diff" });
  function compare() {
    const [a, b] = [list[older.value], list[newer.value]];
    shown.replaceChildren(h("h3", {}, `${id}: v${a.version} → v${b.version}`), fieldDiff(a[field], b[field]).length
      ? table([["field", ([path]) => path], ["before", ([, was]) => was], ["after", ([, , now]) => now]], fieldDiff(a[field], b[field]), `${id}-diff`)
      : h("p", { class: "muted" }, t("noChange")));
  }
  target.replaceChildren(card("versions",
    table([["version", (v) => v.version, "num"], ["who", (v) => v.actor || "—"], ["when", (v) => when(v.created_at)]], list),
    h("div", { class: "row" }, older, newer, h("button", { onclick: compare, name: "compare" }, t("compare"))),
    shown));
  if (list.length) compare();
}

export async function config(root, kind = "rules") {
  if (!Object.hasOwn(KINDS, kind)) {
    root.replaceChildren(notFound());
    return;
  }
  const [path, listField, idField, versioned, template] = KINDS[kind];
  const needs = kind === "budgets" ? "finance" : "program"; // what changing this kind takes
  const side = h("div");
  const tabs = h("div", { class: "row tabs" }, Object.keys(KINDS).map((k) =>
    h("a", { href: `#/config/${k}`, class: k === kind ? "active" : "" }, t(TITLES[k]))));
  async function load() {
    const items = (await get(path))[listField];
    const rows = items.map((item) => [item, unwrap(kind, item)]);
    const message = h("p", { class: "error", role: "alert" });
    const toggle = async (value) => {
      try {
        await api("PUT", `${path}/${encodeURIComponent(value[idField])}`, { ...value, enabled: !value.enabled });
        await load();
      } catch (error) {
        message.textContent = errorText(error);
      }
    };
    root.replaceChildren(tabs, card(TITLES[kind],
      h("div", { class: "row" }, h("button", {
        class: "secondary", name: "new", "data-needs": needs, onclick: () => side.replaceChildren(editor(kind, "", template, load)),
      }, t("new"))),
      table([
        ["id", ([, v]) => v[idField]],
        ["definition", ([item, v]) => summary(kind, item, v)],
        ["version", ([, v]) => v.version ?? "", "num"],
        ["", ([, v]) => h("span", { class: "row" },
          h("button", { class: "secondary", "data-needs": needs, onclick: () => side.replaceChildren(editor(kind, v[idField], editable(kind, v), load)) }, t("edit")),
          versioned ? h("button", { class: "secondary", onclick: () => versions(kind, v[idField], side) }, t("versions")) : null,
          "enabled" in v ? toggleButton(v.enabled, "toggle", needs, () => toggle(v)) : null)],
      ], rows, kind), message), side);
  }
  await load();
}

// What a rule gives, in the operator's words ("5–30 points a day, streak of 7").
function gives(rule) {
  const p = rule[{ ACTION: "action", CHECK_IN: "check_in", PURCHASE: "purchase", TASK: "task", ONLINE_TIME: "online_time", INVITE: "invite" }[rule.kind]] || {};
  if (rule.kind === "CHECK_IN") {
    const streak = p.streak_points || [];
    const [low, high] = [Math.min(...streak), Math.max(...streak)].map(number);
    return low === high ? fill("givesCheckInFlat", { low }) : fill("givesCheckIn", { low, high, days: streak.length });
  }
  if (rule.kind === "PURCHASE") return fill("givesPurchase", { points: number(p.points), step: money({ amount_minor: p.per_amount_minor, currency: p.currency }) });
  if (rule.kind === "TASK") return fill(p.per_item ? "givesTaskPerItem" : "givesTask", { points: number(p.points) });
  if (rule.kind === "ONLINE_TIME") return fill("givesOnline", { points: number(p.points), minutes: number(p.per_minutes) });
  return fill(rule.kind === "INVITE" ? "givesInvite" : "givesAction", { points: number(p.points) });
}

// What it is at a glance, in the operator's words.
function summary(kind, item, v) {
  const off = v.enabled === false ? ` · ${t("off")}` : "";
  const perDay = (n) => `≤${number(n)} ${t("perDayShort")}`;
  const named = v.name ? `${v.name} · ` : "";
  if (kind === "rules") return `${named}${label("kind", v.kind)} · ${label("event", v.event_type)} · ${gives(v)}${v.daily_cap ? ` · ${fill("capDay", { points: number(v.daily_cap) })}` : ""}${off}`;
  if (kind === "campaigns") return `${named}${(v.event_types || []).map((e) => label("event", e)).join(", ")} · ${v.multiplier_percent ? `${v.multiplier_percent}%` : `+${number(v.bonus_points)}`} · ${when(v.start_at)} – ${when(v.end_at)}${off}`;
  if (kind === "tiers") return `${v.name} · ≥${number(v.min_points_12m)} · ${v.multiplier_percent}%`;
  if (kind === "cap-groups") return `${perDay(v.daily_cap)} · ${(v.rule_ids || []).join(", ")}`;
  const limit = [v.points_limit ? number(v.points_limit) : "", v.money_limit?.amount_minor ? money(v.money_limit) : ""].filter(Boolean).join(" · ");
  return `${label("period", v.period)} · ${number(item.used_points)} / ${limit} (${percent(item.used_points, item.limit_points)})`;
}
