// @ts-check
// Building the page from data without ever parsing data as HTML (member ids, notes and
// reasons come from users).
import { getLocale, reasonWords, statusText, t } from "./i18n.js";

// A handler that runs once at a time: while its work is in flight the buttons it belongs to
// are disabled, so a double click cannot send a change twice.
function once(node, handler) {
  let running = false;
  return async (event) => {
    if (node.tagName === "FORM") event.preventDefault();
    if (running) return;
    running = true;
    const buttons = node.tagName === "FORM" ? [...node.querySelectorAll("button")] : [node];
    for (const button of buttons) button.disabled = true;
    try {
      await handler(event);
    } finally {
      running = false;
      for (const button of buttons) button.disabled = false;
    }
  };
}

export function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    const guarded = (tag === "button" && name === "onclick") || (tag === "form" && name === "onsubmit");
    if (guarded) node.addEventListener(name.slice(2), once(node, value));
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else if (value !== false && value != null) node.setAttribute(name, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child != null && child !== false) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// A table of `rows`; each column is [heading key, cell function, "num" for numbers]. It scrolls
// inside its own box on a narrow screen, and downloads as CSV exactly as shown.
export function table(columns, rows, name = "table") {
  if (!rows.length) return h("p", { class: "muted" }, t("none"));
  const grid = h("table", {},
    h("thead", {}, h("tr", {}, columns.map(([key, , kind]) => h("th", { class: kind }, key ? t(key) : "")))),
    h("tbody", {}, rows.map((row) =>
      h("tr", {}, columns.map(([key, cell, kind]) => h("td", { class: kind, "data-label": key ? t(key) : "" }, cell(row)))))));
  return h("div", { class: "table" }, h("div", { class: "scroll" }, grid),
    h("a", { class: "csv", href: "#", download: `${name}.csv`, onclick: (e) => download(e, grid) }, t("csv")));
}

// The table's text as CSV (RFC 4180), action columns left out.
function download(event, grid) {
  const rows = [...grid.rows].map((row) => [...row.cells]);
  const keep = rows[0].map((head, i) => head.textContent !== "" || rows.slice(1).some((r) => !r[i].querySelector("button, input")));
  const quote = (text) => (/[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text);
  const text = rows.map((r) => r.filter((_, i) => keep[i]).map((c) => quote(c.textContent.trim())).join(",")).join("\r\n");
  /** @type {HTMLAnchorElement} */ (event.currentTarget).href = URL.createObjectURL(new Blob(["\ufeff", text], { type: "text/csv" }));
}

export function card(titleKey, ...children) {
  return h("section", { class: "card" }, titleKey ? h("h2", {}, t(titleKey)) : null, children);
}

// A card that loads on its own: a failing backend shows its error here, and the rest of the
// page still loads. `load` returns the card's content.
export function panel(titleKey, load, attributes = {}) {
  const body = h("div", { class: "panel-body" }, h("p", { class: "muted" }, t("loading")));
  const node = h("section", { class: "card", "data-panel": titleKey, ...attributes }, h("h2", {}, t(titleKey)), body);
  async function fill() {
    try {
      body.replaceChildren(...[await load()].flat(Infinity).filter((part) => part != null && part !== false));
    } catch (error) {
      body.replaceChildren(failure(error, fill));
    }
  }
  node.ready = fill();
  return node;
}

// An error where it happened, with a retry when there is something to retry.
export function failure(error, again) {
  return h("div", { class: "error", role: "alert" }, errorText(error),
    again ? h("button", { class: "secondary", onclick: again, name: "retry" }, t("retry")) : null);
}

// Runs `action` only once the operator confirms `questionKey`.
export function confirmed(questionKey, action) {
  return (...args) => (window.confirm(t(questionKey)) ? action(...args) : undefined);
}

// A problem+json answer as one readable message: what it means in the operator's language, the
// API's own words when they add something, then each field at fault once.
export function problemText(status, problem) {
  const violations = problem.violations || [];
  const own = violations.length || status >= 500 ? "" : problem.detail || "";
  const headline = own && getLocale() === "en" ? [own] : [reasonWords(problem.reason) || statusText(status), own];
  return [...headline, ...violations.map((v) => `${v.field}: ${v.description}`)].filter(Boolean).join("\n");
}

// What went wrong, for the operator: the API's problem, else the error's own message.
export function errorText(error) {
  if (error.problem) return problemText(error.status, error.problem);
  return error instanceof TypeError ? statusText("network") : String(error.message);
}

// Puts `nodes` on the page and waits until every panel among them has loaded or failed.
export async function show(root, ...nodes) {
  root.replaceChildren(...nodes);
  await Promise.all([...root.querySelectorAll("[data-panel]")].map((node) => node.ready));
}

// The page for an address the console does not have.
export function notFound() {
  return card(null, h("p", { role: "alert", class: "error", id: "not-found" }, t("notFound")),
    h("a", { href: "#/overview" }, t("overview")));
}

// Previous and next buttons over cursor pages: `tokens` holds the token of each page shown so
// far (the first ""), `index` the one on screen; `load(i)` shows page i.
export function pages(tokens, index, nextToken, load) {
  return h("div", { class: "row" },
    index > 0 ? h("button", { class: "secondary", name: "previous", onclick: () => load(index - 1) }, t("prev")) : null,
    `${t("pageOf")} ${index + 1}`,
    nextToken ? h("button", { class: "secondary", name: "next", onclick: () => { tokens[index + 1] = nextToken; return load(index + 1); } }, t("nextPage")) : null);
}

// Enable or disable something live: disabling asks first (it stops applying at once).
export function toggleButton(enabled, name, needs, toggle) {
  return h("button", { class: "secondary", name, "data-needs": needs, onclick: enabled ? confirmed("confirmDisable", toggle) : toggle },
    t(enabled ? "disable" : "enable"));
}
