// @ts-check
// Building the page from data without ever parsing data as HTML (member ids, notes and
// reasons come from users).
import { t } from "./i18n.js";

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
  for (const child of children.flat()) {
    if (child != null && child !== false) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// A table of `rows`; each column is [heading key, cell function, "num" for numbers].
export function table(columns, rows) {
  if (!rows.length) return h("p", { class: "muted" }, t("none"));
  return h("table", {},
    h("thead", {}, h("tr", {}, columns.map(([key, , kind]) => h("th", { class: kind }, t(key))))),
    h("tbody", {}, rows.map((row) =>
      h("tr", {}, columns.map(([, cell, kind]) => h("td", { class: kind }, cell(row)))))));
}

export function card(titleKey, ...children) {
  return h("section", { class: "card" }, titleKey ? h("h2", {}, t(titleKey)) : null, children);
}

// A problem+json answer as one readable message, field violations included.
export function problemText(problem) {
  const lines = [problem.detail || problem.title || String(problem.status)];
  for (const v of problem.violations || []) {
    lines.push(`${v.field}: ${v.description}`);
  }
  return lines.join("\n");
}

// What went wrong, for the operator: the API's problem, else the error's own message.
export function errorText(error) {
  return error.problem ? problemText(error.problem) : String(error.message);
}
