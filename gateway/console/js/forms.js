// @ts-check
// Rules and campaigns as forms, not JSON: one input per field an operator sets, with words for
// every choice. A field is [path in the definition, input, label key, choices or rule kind].
// What the form does not show (a version, a field added later) is kept as it was.
import { h } from "./dom.js";
import { label, t } from "./i18n.js";

const EVENTS = ["CHECK_IN", "LIKE", "SHARE", "COMMENT", "FORWARD", "PURCHASE", "REFUND", "REGISTER",
  "PROFILE_COMPLETED", "LESSON_COMPLETED", "TASK_COMPLETED", "ONLINE_TIME"];
const RULE_KINDS = ["ACTION", "CHECK_IN", "PURCHASE", "TASK", "ONLINE_TIME", "INVITE"];
// The params each rule kind takes (the definition's oneof).
const PARAMS = { ACTION: "action", CHECK_IN: "check_in", PURCHASE: "purchase", TASK: "task", ONLINE_TIME: "online_time", INVITE: "invite" };

const RULE_FIELDS = [
  ["name", "text", "ruleName"], ["description", "textarea", "description"],
  ["kind", "select", "ruleKind", RULE_KINDS.map((k) => [k, label("kind", k)])],
  ["event_type", "select", "eventType", EVENTS.map((e) => [e, label("event", e)])],
  ["action.points", "number", "pointsEach", "ACTION"],
  ["check_in.streak_points", "list", "streakPoints", "CHECK_IN"],
  ["check_in.cycle", "checkbox", "cycle", "CHECK_IN"],
  ["purchase.points", "number", "pointsPerStep", "PURCHASE"],
  ["purchase.per_amount_minor", "number", "stepMinor", "PURCHASE"],
  ["purchase.currency", "text", "currency", "PURCHASE"],
  ["purchase.pending_days", "number", "pendingDays", "PURCHASE"],
  ["task.points", "number", "pointsEach", "TASK"], ["task.per_item", "checkbox", "perItem", "TASK"],
  ["online_time.points", "number", "pointsPerStep", "ONLINE_TIME"],
  ["online_time.per_minutes", "number", "perMinutes", "ONLINE_TIME"],
  ["invite.points", "number", "pointsEach", "INVITE"],
  ["daily_cap", "number", "dailyCap"], ["weekly_cap", "number", "weeklyCap"],
  ["monthly_cap", "number", "monthlyCap"], ["lifetime_cap", "number", "lifetimeCap"],
  ["cap_group", "text", "capGroup"], ["expiry_days", "number", "expiryDays"], ["enabled", "checkbox", "enabled"],
];

const CAMPAIGN_FIELDS = [
  ["name", "text", "ruleName"], ["description", "textarea", "description"],
  ["event_types", "checks", "eventTypes", EVENTS.map((e) => [e, label("event", e)])],
  ["multiplier_percent", "number", "multiplierPercent"], ["bonus_points", "number", "bonusPoints"],
  ["audience", "select", "audience", [["ALL", label("audience", "ALL")], ["NEW_USERS", label("audience", "NEW_USERS")]]],
  ["new_user_days", "number", "newUserDays"],
  ["start_at", "datetime", "startAt"], ["end_at", "datetime", "endAt"],
  ["budget_id", "text", "budget"], ["enabled", "checkbox", "enabled"],
];

export const FORMS = { rules: RULE_FIELDS, campaigns: CAMPAIGN_FIELDS };

const get = (value, path) => path.split(".").reduce((v, key) => v?.[key], value);

function set(value, path, next) {
  const keys = path.split(".");
  let node = value;
  for (const key of keys.slice(0, -1)) node = node[key] ??= {};
  node[keys.at(-1)] = next;
}

// datetime-local inputs hold the browser's local time; the API takes instants.
function localTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return new Date(date.getTime() - date.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function input(field, current) {
  const [path, kind, , choices] = field;
  const name = path;
  if (kind === "textarea") return h("textarea", { name, rows: 2, maxlength: 1000 }, current ?? "");
  if (kind === "checkbox") return h("input", { name, type: "checkbox", checked: Boolean(current) });
  if (kind === "select") return h("select", { name }, choices.map(([v, words]) => h("option", { value: v, selected: v === current }, words)));
  if (kind === "checks") {
    return h("span", { class: "row", "data-name": name }, choices.map(([v, words]) =>
      h("label", {}, h("input", { type: "checkbox", value: v, checked: (current ?? []).includes(v) }), words)));
  }
  if (kind === "list") return h("input", { name, value: (current ?? []).join(", "), placeholder: "5, 10, 15" });
  if (kind === "datetime") return h("input", { name, type: "datetime-local", value: localTime(current) });
  return h("input", { name, type: kind, value: current ?? "", min: kind === "number" ? 0 : null });
}

function read(field, node) {
  const [, kind] = field;
  if (kind === "checkbox") return node.checked;
  if (kind === "checks") return [...node.querySelectorAll("input:checked")].map((box) => box.value);
  if (kind === "list") return node.value.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  if (kind === "number") return node.value === "" ? 0 : Number(node.value);
  if (kind === "datetime") return node.value ? new Date(node.value).toISOString() : null;
  return node.value;
}

// The form for `value`, and a function that reads it back into a definition.
export function definitionForm(kind, value) {
  const fields = FORMS[kind];
  const nodes = new Map(fields.map((field) => [field, input(field, get(value, field[0]))]));
  const rows = fields.map((field) => h("label", { "data-field": field[0] }, t(field[2]), nodes.get(field)));
  const ruleKind = nodes.get(fields.find(([path]) => path === "kind"));
  // A rule shows the params of its kind only.
  const showKind = () => fields.forEach((field, i) => {
    if (PARAMS[field[3]]) rows[i].hidden = field[3] !== /** @type {HTMLSelectElement} */ (ruleKind).value;
  });
  if (ruleKind) { ruleKind.addEventListener("change", showKind); showKind(); }
  const form = h("div", { class: "fields" }, rows);
  function definition() {
    const next = structuredClone(value);
    for (const params of Object.values(PARAMS)) delete next[params];
    for (const field of fields) {
      const [path, , , owner] = field;
      if (PARAMS[owner] && owner !== next.kind) continue;
      set(next, path, read(field, nodes.get(field)));
    }
    if (kind === "campaigns") delete next[next.multiplier_percent ? "bonus_points" : "multiplier_percent"];
    return next;
  }
  return [form, definition];
}
