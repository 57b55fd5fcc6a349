// @ts-check
// The mall: every item (create, edit, enable, disable), redemptions by status with where to
// ship them and the next shipment step, and every lottery with its prizes, odds, remaining
// stock and the published commitment to its seed. Each part loads on its own.
import { api, get } from "../api.js";
import { card, failure, h, panel, show, table, toggleButton } from "../dom.js";
import { label, money, number, percent, t, when } from "../i18n.js";

const ITEM_TYPES = ["PHYSICAL", "VIRTUAL", "COUPON", "POINTS_PLUS_CASH"];
const STATUSES = ["", "PENDING", "COMPLETED", "FAILED", "CANCELLED"];

const stockText = (i) => (i.unlimited_stock ? t("unlimited") : number(i.stock));

// The fields an operator sets most; everything else the item has is kept as it was.
function itemForm(item, message, done) {
  const field = (name, attributes) => h("input", { name, ...attributes });
  const id = field("item_id", { value: item?.item_id ?? "", required: true, disabled: Boolean(item), placeholder: t("itemId") });
  const title = field("title", { value: item?.title ?? "", required: true, maxlength: 200 });
  const type = h("select", { name: "type", disabled: Boolean(item) }, ITEM_TYPES.map((v) => h("option", { value: v, selected: v === (item?.type ?? "PHYSICAL") }, label("itemType", v))));
  const price = field("points_price", { type: "number", min: 1, required: true, value: item?.points_price ?? "" });
  const stock = field("stock", { type: "number", min: 0, value: item?.stock ?? 0 });
  const unlimited = field("unlimited_stock", { type: "checkbox", checked: Boolean(item?.unlimited_stock) });
  const limit = field("per_user_limit", { type: "number", min: 0, value: item?.per_user_limit ?? 0 });
  return h("form", { class: "row", name: "item", onsubmit: async () => {
    const body = { ...(item ?? { enabled: true, limit_period: "LIFETIME" }), type: type.value, title: title.value,
      points_price: Number(price.value), stock: Number(stock.value), unlimited_stock: unlimited.checked, per_user_limit: Number(limit.value) };
    delete body.item_id;
    try {
      await api("PUT", `/v1/admin/items/${encodeURIComponent(id.value.trim())}`, body);
      await done();
    } catch (error) {
      message.replaceChildren(failure(error));
    }
  } },
  h("label", {}, t("itemId"), id), h("label", {}, t("title_"), title), h("label", {}, t("type"), type),
  h("label", {}, t("pointsPrice"), price), h("label", {}, t("stock"), stock), h("label", {}, unlimited, t("stockUnlimited")),
  h("label", {}, t("perUserLimit"), limit), h("button", { type: "submit", name: "save" }, t("save")));
}

function items(target) {
  return panel("items", async () => {
    const list = (await get("/v1/admin/items?page_size=500")).items;
    const message = h("div");
    const editor = h("div");
    const reload = () => show(target, items(target));
    const toggle = async (i) => {
      try {
        const { item_id: _, ...body } = i;
        await api("PUT", `/v1/admin/items/${encodeURIComponent(i.item_id)}`, { ...body, enabled: !i.enabled });
        await reload();
      } catch (error) {
        message.replaceChildren(failure(error));
      }
    };
    const edit = (i) => editor.replaceChildren(itemForm(i, message, reload));
    return [
      h("button", { class: "secondary", name: "new-item", "data-needs": "program", onclick: () => edit(null) }, t("newItem")), editor, message,
      table([
        ["id", (i) => i.item_id], ["title_", (i) => i.title], ["type", (i) => label("itemType", i.type)],
        ["price", (i) => number(i.points_price), "num"], ["stock", stockText, "num"],
        ["limit", (i) => (i.per_user_limit ? `${number(i.per_user_limit)} ${label("limitPeriod", i.limit_period)}` : "—"), "num"],
        ["cashPart", (i) => (i.cash_price?.amount_minor ? money(i.cash_price) : "—"), "num"],
        ["enabledState", (i) => h("span", { class: i.enabled ? "ok" : "muted" }, t(i.enabled ? "on" : "off"))],
        ["", (i) => h("span", { class: "row" },
          h("button", { class: "secondary", name: "edit", "data-needs": "program", onclick: () => edit(i) }, t("edit")),
          toggleButton(i.enabled, "toggle", "program", () => toggle(i)))],
      ], list, "items"),
    ];
  });
}

// Redemptions, newest first, optionally of one status: saga step, shipment, where to ship it.
function redemptions(target, status = "") {
  return panel("redemptions", async () => {
    const query = new URLSearchParams({ page_size: "100" });
    if (status) query.set("status", status);
    const list = (await get(`/v1/admin/redemptions?${query}`)).redemptions;
    const message = h("div");
    const NEXT = { PENDING: "SHIPPED", SHIPPED: "DELIVERED" };
    const again = (next = status) => show(target, redemptions(target, next));
    const ship = async (r) => {
      try {
        await api("POST", `/v1/admin/users/${encodeURIComponent(r.user_id)}/redemptions/${r.redemption_id}/shipment`, { status: NEXT[r.shipment_status] });
        await again();
      } catch (error) {
        message.replaceChildren(failure(error));
      }
    };
    const filter = h("select", { name: "status", onchange: () => again(filter.value) },
      STATUSES.map((s) => h("option", { value: s, selected: s === status }, s ? label("redemption", s) : t("statusAny"))));
    return [h("label", {}, t("filter"), filter), message, table([
      ["id", (r) => r.redemption_id],
      ["user", (r) => h("a", { href: `#/member/${encodeURIComponent(r.user_id)}` }, r.user_id)],
      ["items", (r) => `${r.item_id} × ${r.quantity}`], ["points", (r) => number(r.points), "num"],
      ["status", (r) => `${label("redemption", r.status)}${r.failure_reason ? ` (${r.failure_reason})` : ""}`],
      ["sagaStep", (r) => label("step", r.saga_step)],
      ["shipment", (r) => label("shipment", r.shipment_status)],
      ["shippingAddress", (r) => r.shipping_address || ""],
      ["when", (r) => when(r.created_at)],
      ["", (r) => (NEXT[r.shipment_status] && r.status === "COMPLETED"
        ? h("button", { class: "secondary", "data-needs": "program", onclick: () => ship(r) }, t(`mark${NEXT[r.shipment_status]}`)) : "")],
    ], list, "redemptions")];
  });
}

async function lotteryDetail(lotteryId) {
  const found = await get(`/v1/lotteries/${encodeURIComponent(lotteryId)}`);
  const l = found.lottery;
  const weights = l.prizes.reduce((sum, p) => sum + p.weight, l.no_prize_weight);
  return [h("p", {}, `${l.title} · ${number(l.points_per_draw)} ${t("points")} · ${t("seedCommitment")}: `,
    h("code", { id: "seed-commitment" }, found.current_seed_sha256)),
  table([["id", (p) => p.prize_id], ["kind", (p) => label("prize", p.kind)], ["odds", (p) => percent(p.weight, weights), "num"],
    ["remaining", (p) => (p.unlimited_stock ? t("unlimited") : number(p.stock)), "num"]], l.prizes, `lottery-${lotteryId}`)];
}

const LOTTERY = { title: "", points_per_draw: 10, daily_draws_per_user: 0, enabled: false, no_prize_weight: 1,
  prizes: [{ prize_id: "p1", kind: "POINTS", points: 50, weight: 1, stock: 10 }] };

// A lottery's definition as JSON (its prize table is a list): create, edit, enable, disable.
function lotteryEditor(lottery, message, done) {
  const id = h("input", { name: "lottery_id", value: lottery?.lottery_id ?? "", disabled: Boolean(lottery), placeholder: t("lotteryId") });
  const { lottery_id: _, ...definition } = lottery ?? LOTTERY;
  const text = h("textarea", { name: "lottery", rows: 10 }, JSON.stringify(definition, null, 2));
  const save = async () => {
    try {
      await api("PUT", `/v1/admin/lotteries/${encodeURIComponent(id.value.trim())}`, JSON.parse(text.value));
      await done();
    } catch (error) {
      message.replaceChildren(failure(error));
    }
  };
  return h("div", {}, h("label", {}, t("lotteryId"), id), text, h("button", { name: "save-lottery", onclick: save }, t("save")));
}

function lotteries(target, lotteryId) {
  return panel("lotteries", async () => {
    const list = (await get("/v1/admin/lotteries?page_size=500")).lotteries;
    const message = h("div"), editor = h("div");
    const reload = () => show(target, lotteries(target, lotteryId));
    const edit = (l) => editor.replaceChildren(lotteryEditor(l, message, reload));
    const toggle = async (l) => {
      try {
        const { lottery_id: _, ...body } = l;
        await api("PUT", `/v1/admin/lotteries/${encodeURIComponent(l.lottery_id)}`, { ...body, enabled: !l.enabled });
        await reload();
      } catch (error) {
        message.replaceChildren(failure(error));
      }
    };
    return [h("button", { class: "secondary", name: "new-lottery", "data-needs": "program", onclick: () => edit(null) }, t("newLottery")), editor, message,
      table([
        ["id", (l) => h("a", { href: `#/mall/${encodeURIComponent(l.lottery_id)}` }, l.lottery_id)], ["title_", (l) => l.title],
        ["pointsPerDraw", (l) => number(l.points_per_draw), "num"],
        ["enabledState", (l) => t(l.enabled ? "on" : "off")],
        ["", (l) => h("span", { class: "row" },
          h("button", { class: "secondary", name: "edit-lottery", "data-needs": "program", onclick: () => edit(l) }, t("edit")),
          toggleButton(l.enabled, "toggle-lottery", "program", () => toggle(l)))],
      ], list, "lotteries"),
      lotteryId ? card("lottery", await lotteryDetail(lotteryId).catch((error) => failure(error))) : null];
  });
}

export async function mall(root, lotteryId = "") {
  const itemsBox = h("div"), redemptionsBox = h("div"), lotteriesBox = h("div");
  await show(root, itemsBox, redemptionsBox, lotteriesBox);
  await Promise.all([show(itemsBox, items(itemsBox)), show(redemptionsBox, redemptions(redemptionsBox)),
    show(lotteriesBox, lotteries(lotteriesBox, lotteryId))]);
}
