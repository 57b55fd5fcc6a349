// @ts-check
// Webhooks: subscriptions (create, edit, enable or disable, rotate the secret) and each one's
// delivery log (status, attempts, answer, latency; redeliver one, replay a window).
import { api, get } from "../api.js";
import { card, confirmed, errorText, h, table, toggleButton } from "../dom.js";
import { label, number, reasonText, t, when } from "../i18n.js";

const BASE = "/v1/admin/webhooks";

// Runs `call`, showing its problem in `message` instead of throwing; true when it succeeded.
async function attempt(message, call) {
  try {
    await call();
    message.textContent = "";
    return true;
  } catch (error) {
    message.textContent = errorText(error);
    return false;
  }
}

// A secret is answered once: shown until the operator leaves the page, never stored.
function secretNotice(secret) {
  return h("div", { class: "notice", role: "status" }, h("p", {}, t("secretOnce")),
    h("code", { id: "secret" }, secret));
}

function types(value) { return value.split(",").map((s) => s.trim()).filter(Boolean); }

// The create or edit form; `current` is the subscription being edited, if any.
function editor(current, message, done) {
  const url = h("input", { name: "url", type: "url", required: true, size: 48, placeholder: "https://", value: current?.url ?? "" });
  const kinds = h("input", { name: "event_types", size: 40, value: (current?.event_types ?? ["*"]).join(", ") });
  const description = h("input", { name: "description", maxlength: 500, placeholder: t("note"), value: current?.description ?? "" });
  return h("form", { class: "row", onsubmit: async (e) => {
    e.preventDefault();
    const body = { url: url.value.trim(), event_types: types(kinds.value), description: description.value };
    /** @type {any} */
    let answer;
    const ok = await attempt(message, async () => {
      answer = current
        ? await api("PUT", `${BASE}/subscriptions/${current.subscription_id}`, { ...body, enabled: current.enabled })
        : await api("POST", `${BASE}/subscriptions`, body);
    });
    if (ok) await done(answer);
  } },
  h("label", {}, t("endpoint"), " ", url), h("label", {}, t("eventTypes"), " ", kinds),
  description, h("button", { type: "submit", name: "save" }, t(current ? "save" : "subscribe")));
}

function state(s) {
  if (s.enabled) return h("span", { class: "ok" }, t("enabled"));
  return h("span", { class: "error" }, reasonText(s.disabled_reason) || t("disabled"));
}

async function list(root, notice) {
  const { subscriptions } = await get(`${BASE}/subscriptions`);
  const message = h("p", { class: "error", role: "alert" });
  const reload = (next) => list(root, next);
  const toggle = (s) => attempt(message, () => api("PUT", `${BASE}/subscriptions/${s.subscription_id}`,
    { url: s.url, event_types: s.event_types, description: s.description, enabled: !s.enabled })).then((ok) => ok && reload());
  const rotate = async (s) => {
    /** @type {any} */
    let answer;
    if (await attempt(message, async () => { answer = await api("POST", `${BASE}/subscriptions/${s.subscription_id}/secret`, {}); })) {
      await reload(secretNotice(answer.secret));
    }
  };
  root.replaceChildren(
    card("webhooks", notice ?? "", table([
      ["id", (s) => h("a", { href: `#/webhooks/${s.subscription_id}` }, s.subscription_id)],
      ["endpoint", (s) => s.url], ["eventTypes", (s) => s.event_types.join(", ")],
      ["note", (s) => s.description], ["status", state],
      ["pending", (s) => number(s.pending_deliveries), "num"],
      ["previousSecret", (s) => (s.previous_secret_expires_at ? when(s.previous_secret_expires_at) : "—")],
      ["", (s) => h("div", { class: "row" },
        toggleButton(s.enabled, "toggle", "admin", () => toggle(s)),
        h("button", { class: "secondary", name: "rotate", "data-needs": "admin", onclick: confirmed("confirmRotate", () => rotate(s)) }, t("rotate")))],
    ], subscriptions, "webhooks"), message),
    h("div", { "data-needs": "admin" }, card("new", editor(null, message, (answer) => reload(secretNotice(answer.secret))))));
}

const STATUSES = ["", "PENDING", "DELIVERED", "FAILED"];

// datetime-local values are the browser's local time; the API takes instants.
function localInput(name, date) {
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  return h("input", { type: "datetime-local", name, value: local });
}

async function deliveries(root, id, status = "", notice = null) {
  const subscription = await get(`${BASE}/subscriptions/${id}`);
  const message = h("p", { class: "error", role: "alert" });
  const rows = h("div", { id: "deliveries" });
  const more = h("button", { class: "secondary", name: "more", hidden: true }, t("more"));
  const filter = h("select", { name: "status", onchange: () => deliveries(root, id, filter.value) },
    STATUSES.map((s) => h("option", { value: s, selected: s === status }, s ? label("delivery", s) : t("all"))));
  const again = (next) => deliveries(root, id, filter.value, next);
  let token = "";
  const loaded = [];
  async function page() {
    const query = new URLSearchParams({ page_size: "50", page_token: token });
    if (status) query.set("status", status);
    const answer = await get(`${BASE}/subscriptions/${id}/deliveries?${query}`);
    loaded.push(...answer.deliveries);
    token = answer.next_page_token;
    more.hidden = !token;
    rows.replaceChildren(table([
      ["id", (d) => d.delivery_id], ["when", (d) => when(d.created_at)], ["type", (d) => d.event_type],
      ["member", (d) => d.member_id], ["status", (d) => label("delivery", d.status)], ["attempts", (d) => number(d.attempts), "num"],
      ["code", (d) => d.last_status_code || "—", "num"], ["latency", (d) => `${number(d.last_latency_ms)} ms`, "num"],
      ["answer", (d) => d.last_error || d.last_response],
      ["delivered", (d) => (d.status === "PENDING" ? `${t("next")}: ${when(d.next_attempt_at)}` : when(d.deliver_at))],
      ["", (d) => h("button", { class: "secondary", name: "redeliver", "data-needs": "admin", onclick: () => attempt(message,
        () => api("POST", `${BASE}/deliveries/${d.delivery_id}/redeliver`)).then((ok) => ok && again()) }, t("redeliver"))],
    ], loaded, `deliveries-${id}`));
  }
  more.addEventListener("click", () => attempt(message, page));
  const now = new Date();
  const start = localInput("start", new Date(now.getTime() - 86400000));
  const end = localInput("end", new Date(now.getTime() + 60000)); // the input drops seconds
  const replay = async (e) => {
    e.preventDefault();
    if (!window.confirm(t("confirmReplay"))) return;
    const range = { start_time: new Date(start.value).toISOString(), end_time: new Date(end.value).toISOString() };
    /** @type {any} */
    let answer;
    if (await attempt(message, async () => { answer = await api("POST", `${BASE}/subscriptions/${id}/replay`, range); })) {
      await again(h("p", { role: "status", id: "replayed" }, `${t("queued")}: ${number(answer.deliveries)}`));
    }
  };
  root.replaceChildren(
    card(null, h("h2", {}, `${t("webhooks")} · ${subscription.subscription_id}`),
      h("p", {}, state(subscription), ` · ${t("pending")}: ${number(subscription.pending_deliveries)}`),
      h("div", { "data-needs": "admin" }, editor(subscription, message, () => again(h("p", { class: "ok", role: "status" }, t("saved")))))),
    card("deliveries", notice ?? "", h("div", { class: "row" }, h("label", {}, t("status"), " ", filter)), rows, more,
      h("form", { class: "row", onsubmit: replay, "data-needs": "admin" }, t("replayWindow"), start, end,
        h("button", { type: "submit", name: "replay" }, t("replay")))),
    message);
  await page();
}

export async function webhooks(root, id) {
  if (id) await deliveries(root, id);
  else await list(root);
}
