// @ts-check
// Health: each service's status, the last expiry run, the dead letters the services could not
// deliver, and the webhook subscriptions the webhooks service disabled. Each panel loads on its
// own, so a service that is down shows as down here while the rest still reads.
import { get } from "../api.js";
import { h, panel, show, table } from "../dom.js";
import { label, number, reasonText, t, when } from "../i18n.js";

async function services() {
  const reply = await fetch("/readyz", { credentials: "omit" });
  const ready = await reply.json();
  return table([["id", ([name]) => name],
    ["status", ([, status]) => h("span", { class: status === "SERVING" ? "ok" : "error", "data-status": status },
      label("serving", status))]], Object.entries(ready.backends), "services");
}

async function expiry() {
  const run = (await get(`/v1/admin/reports/ledger?start=${encodeURIComponent(new Date().toISOString())}`)).last_expiry_run;
  if (!run) return h("p", { class: "muted" }, t("none"));
  return table([["when", (r) => when(r.finish_at)], ["expired", (r) => number(r.points_expired), "num"],
    ["lots", (r) => number(r.lots_expired), "num"], ["membersAffected", (r) => number(r.members_affected), "num"],
    ["id", (r) => r.request_id]], [run], "expiry-run");
}

function letters(service) {
  return async () => table([["id", (d) => d.letter_id], ["user", (d) => d.user_id],
    ["subject", (d) => d.subject], ["reason", (d) => d.reason], ["status", (d) => label("letter", d.status)],
    ["attempts", (d) => number(d.attempts), "num"], ["when", (d) => when(d.created_at)]],
  (await get(`/v1/admin/dead-letters?service=${service}`)).dead_letters, `dead-letters-${service}`);
}

async function gaveUp() {
  const { subscriptions } = await get("/v1/admin/webhooks/subscriptions");
  return table([["id", (s) => h("a", { href: `#/webhooks/${s.subscription_id}` }, s.subscription_id)],
    ["endpoint", (s) => s.url], ["reason", (s) => reasonText(s.disabled_reason)],
    ["pending", (s) => number(s.pending_deliveries), "num"]],
  subscriptions.filter((s) => !s.enabled && s.disabled_reason), "disabled-webhooks");
}

export async function health(root) {
  await show(root, panel("backends", services), panel("lastExpiryRun", expiry),
    panel("deadLettersRules", letters("rules"), { "data-service": "rules" }),
    panel("deadLettersMall", letters("mall"), { "data-service": "mall" }),
    panel("disabledWebhooks", gaveUp));
}
