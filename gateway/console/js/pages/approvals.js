// @ts-check
// Approvals: risky changes waiting for a second person (an adjustment above the limit, a rule
// or campaign that raises the simulated cost, a budget raised or removed): what, by whom, why,
// what it would change; approved (carried out at once) or rejected by someone else.
import { api, get, session } from "../api.js";
import { confirmed, failure, h, panel, show, table } from "../dom.js";
import { t, when } from "../i18n.js";

function detail(a) {
  return h("details", {}, h("summary", {}, a.reason), h("pre", { class: "body" }, a.request_json || "—"),
    h("pre", { class: "body" }, a.detail_json || "—"));
}

export async function approvals(root, status = "PENDING") {
  const message = h("div");
  const again = () => approvals(root, status);
  const decide = (a, decision) => async () => {
    try {
      await api("POST", `/v1/admin/approvals/${a.approval_id}/${decision}`);
      await again();
    } catch (error) {
      message.replaceChildren(failure(error));
    }
  };
  const actions = (a) => (a.status === "PENDING" && a.author !== session.user_id && session.can.includes(a.needs === "admin" ? "admin" : "finance")
    ? h("span", { class: "row" },
      h("button", { name: "approve", onclick: decide(a, "approve") }, t("approveOne")),
      h("button", { class: "secondary", name: "reject", onclick: confirmed("confirmRejectChange", decide(a, "reject")) }, t("rejectOne")))
    : "");
  const filter = h("select", { name: "status", onchange: () => approvals(root, filter.value) },
    ["PENDING", "DONE", "REJECTED", ""].map((s) => h("option", { value: s, selected: s === status }, s ? t(`approval${s}`) : t("all"))));
  await show(root, panel("approvals", async () => {
    const list = (await get(`/v1/admin/approvals?status=${status}&page_size=100`)).approvals;
    return [h("label", {}, t("filter"), filter), message, table([
      ["id", (a) => a.approval_id, "num"], ["when", (a) => when(a.created_at)],
      ["who", (a) => a.author], ["action", (a) => a.action], ["target", (a) => a.target],
      ["reason", detail], ["status", (a) => `${t(`approval${a.status}`)}${a.decided_by ? ` · ${a.decided_by}` : ""}`],
      ["", actions],
    ], list, "approvals")];
  }));
}
