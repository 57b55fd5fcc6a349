// @ts-check
// The mall: items with stock and limits; a lottery's prizes, odds, remaining stock and the
// published commitment to its seed.
import { api, get } from "../api.js";
import { card, h, table } from "../dom.js";
import { money, number, percent, t, when } from "../i18n.js";

// Every member's redemptions, newest first: saga step, shipment, and the next shipment step.
async function redemptions() {
  const list = (await get("/v1/admin/redemptions?page_size=50")).redemptions;
  const section = card("redemptions");
  const NEXT = { PENDING: "SHIPPED", SHIPPED: "DELIVERED" };
  async function ship(r) {
    await api("POST", `/v1/admin/users/${encodeURIComponent(r.user_id)}/redemptions/${r.redemption_id}/shipment`,
      { status: NEXT[r.shipment_status] });
    section.replaceWith(await redemptions());
  }
  section.append(table([
    ["id", (r) => r.redemption_id],
    ["user", (r) => h("a", { href: `#/member/${encodeURIComponent(r.user_id)}` }, r.user_id)],
    ["items", (r) => `${r.item_id} × ${r.quantity}`], ["points", (r) => number(r.points), "num"],
    ["status", (r) => `${r.status}${r.failure_reason ? ` (${r.failure_reason})` : ""}`],
    ["sagaStep", (r) => r.saga_step],
    ["shipment", (r) => (r.shipment_status === "UNSPECIFIED" ? "" : r.shipment_status)],
    ["when", (r) => when(r.created_at)],
    ["", (r) => (NEXT[r.shipment_status] && r.status === "COMPLETED"
      ? h("button", { class: "secondary", onclick: () => ship(r) }, t(`mark${NEXT[r.shipment_status]}`)) : "")],
  ], list));
  return section;
}

export async function mall(root, lotteryId = "") {
  const catalog = await get("/v1/catalog?page_size=100");
  const input = h("input", { name: "lottery", value: lotteryId, placeholder: t("lotteryId") });
  const lottery = h("div");
  root.replaceChildren(
    card("items", table([
      ["id", (i) => i.item_id], ["title_", (i) => i.title], ["type", (i) => i.type],
      ["price", (i) => number(i.points_price), "num"],
      ["stock", (i) => number(i.stock), "num"],
      ["limit", (i) => (i.per_user_limit ? number(i.per_user_limit) : "—"), "num"],
      ["cost", (i) => (i.cash_price_minor ? money({ amount_minor: i.cash_price_minor }) : "—"), "num"],
    ], catalog.items)),
    await redemptions(),
    card("lottery", h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); location.hash = `#/mall/${encodeURIComponent(input.value.trim())}`; } },
      input, h("button", { type: "submit" }, t("search"))), lottery));
  if (!lotteryId) return;
  const found = await get(`/v1/lotteries/${encodeURIComponent(lotteryId)}`);
  const l = found.lottery;
  const weights = l.prizes.reduce((sum, p) => sum + p.weight, l.no_prize_weight);
  const stock = (p) => (p.unlimited_stock ? "∞" : number(p.stock));
  lottery.replaceChildren(
    h("p", {}, `${l.title} · ${number(l.points_per_draw)} ${t("points")} · ${t("seedCommitment")}: `,
      h("code", { id: "seed-commitment" }, found.current_seed_sha256)),
    table([["id", (p) => p.prize_id], ["kind", (p) => p.kind], ["odds", (p) => percent(p.weight, weights), "num"],
      ["remaining", stock, "num"]], l.prizes));
}
