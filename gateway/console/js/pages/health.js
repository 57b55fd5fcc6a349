// @ts-check
// Health: each service's status, the dead letters the services could not deliver, and the
// webhook subscriptions the webhooks service disabled after giving up on them.
import { get } from "../api.js";
import { card, h, table } from "../dom.js";
import { number, t, when } from "../i18n.js";

export async function health(root) {
  const [ready, rules, mall, ledger, hooks] = await Promise.all([
    fetch("/readyz").then((r) => r.json()),
    get("/v1/admin/dead-letters?service=rules"),
    get("/v1/admin/dead-letters?service=mall"),
    get(`/v1/admin/reports/ledger?start=${encodeURIComponent(new Date().toISOString())}`),
    get("/v1/admin/webhooks/subscriptions"),
  ]);
  const gaveUp = hooks.subscriptions.filter((s) => !s.enabled && s.disabled_reason);
  const run = ledger.last_expiry_run;
  const letters = [...rules.dead_letters.map((d) => ["rules", d]), ...mall.dead_letters.map((d) => ["mall", d])];
  root.replaceChildren(
    card("backends", table([["id", ([name]) => name], ["status", ([, status]) => h("span", { class: status === "SERVING" ? "ok" : "error" }, status)]],
      Object.entries(ready.backends))),
    card("lastExpiryRun", run
      ? table([["when", (r) => when(r.finish_at)], ["expired", (r) => number(r.points_expired), "num"],
        ["lots", (r) => number(r.lots_expired), "num"], ["members", (r) => number(r.members_affected), "num"],
        ["id", (r) => r.request_id]], [run])
      : h("p", { class: "muted" }, t("none"))),
    card("deadLetters", table([["id", ([s, d]) => `${s}/${d.letter_id}`], ["user", ([, d]) => d.user_id],
      ["subject", ([, d]) => d.subject], ["reason", ([, d]) => d.reason], ["status", ([, d]) => d.status],
      ["attempts", ([, d]) => d.attempts, "num"], ["when", ([, d]) => when(d.created_at)]], letters)),
    card("disabledWebhooks", table([["id", (s) => h("a", { href: `#/webhooks/${s.subscription_id}` }, s.subscription_id)],
      ["endpoint", (s) => s.url], ["reason", (s) => s.disabled_reason],
      ["pending", (s) => number(s.pending_deliveries), "num"]], gaveUp)));
}
