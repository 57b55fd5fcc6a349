// @ts-check
// The audit log: every operator's change, newest first (who, with which roles, what, the
// answer's status, from where), found by operator and by text, a page at a time; each entry's
// request and answer on demand. Finance and admin only.
import { get } from "../api.js";
import { card, h, pages, panel, show, table } from "../dom.js";
import { number, t, when } from "../i18n.js";

const PAGE = 100;

function bodies(entry) {
  return h("details", {}, h("summary", {}, entry.target),
    h("pre", { class: "body" }, entry.request_json || "—"), h("pre", { class: "body" }, entry.response_json || "—"));
}

export async function audit(root) {
  const actor = h("input", { name: "actor", maxlength: 128, placeholder: t("who") });
  const text = h("input", { name: "text", maxlength: 200, placeholder: t("search") });
  const results = h("div");
  const tokens = [""];
  const load = (index = 0) => show(results, panel("auditLog", async () => {
    const query = new URLSearchParams({ page_size: String(PAGE), page_token: tokens[index], actor: actor.value.trim(), text: text.value.trim() });
    const reply = await get(`/v1/admin/audit-log?${query}`);
    tokens.length = index + 1;
    return [table([
      ["id", (e) => number(e.seq), "num"], ["when", (e) => when(e.created_at)], ["who", (e) => `${e.actor} (${e.roles.join(", ")})`],
      ["action", (e) => e.action], ["target", bodies], ["status", (e) => e.status, "num"],
      ["from_", (e) => [e.ip, e.user_agent].filter(Boolean).join(" · ")],
    ], reply.entries, "audit-log"),
    pages(tokens, index, reply.next_page_token, load)];
  }));
  await show(root, card("auditLog", h("form", { class: "row", onsubmit: () => load(0) },
    h("label", {}, t("who"), actor), h("label", {}, t("search"), text),
    h("button", { type: "submit", name: "search" }, t("search")))), results);
  await load(0);
}
