// The mall: items with stock and limits; a lottery's prizes, odds, remaining stock and the
// published commitment to its seed.
import { get } from "../api.js";
import { card, h, table } from "../dom.js";
import { money, number, percent, t } from "../i18n.js";

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
