// @ts-check
// Words in English and Simplified Chinese, and numbers and dates in the chosen locale.
const WORDS = {
  en: {
    title: "Points console", language: "Language", signIn: "Sign in", signOut: "Sign out",
    signInTitle: "Sign in",
    signInHelp: "Paste an operator token with the admin scope. It stays in this tab's memory only.",
    notAdmin: "This token does not carry the admin scope.",
    economy: "Economy", config: "Rules & campaigns", simulate: "Simulate", reviews: "Reviews",
    member: "Member", mall: "Mall", health: "Health",
    from: "From", to: "To", refresh: "Refresh",
    liability: "Outstanding liability", issued: "Issued", redeemed: "Redeemed", expired: "Expired",
    reversed: "Reversed", inReview: "In review", breakage: "Breakage rate",
    redemptionRate: "Redemption rate", issuanceRatio: "Issuance ratio", cost: "Cost",
    purchases: "Purchases", perDay: "Points per day", byRule: "Cost per rule",
    byCampaign: "Cost per campaign", tierExtra: "Tier multipliers", budgets: "Budgets",
    budget: "Budget", period: "Period", used: "Used", limit: "Limit", points: "Points",
    id: "Id", rules: "Rules", campaigns: "Campaigns", tiers: "Tiers", capGroups: "Cap groups",
    edit: "Edit", save: "Save", saved: "Saved", new: "New", enabled: "Enabled",
    enable: "Enable", disable: "Disable", versions: "Versions", version: "Version",
    who: "Who", when: "When", compare: "Compare", definition: "Definition",
    draftRules: "Draft rules (JSON list)", draftCampaigns: "Draft campaigns (JSON list)",
    events: "Events (JSON list)", generate: "Generate", generateHelp: "users × check-ins",
    run: "Run", today: "In force today", draft: "Draft", total: "Total", rule: "Rule",
    campaign: "Campaign", difference: "Difference",
    user: "User", event: "Event", type: "Type", reasons: "Signals", recorded: "Recorded",
    approve: "Approve selected", reject: "Reject selected", none: "Nothing here.",
    search: "Search", memberId: "Member id", available: "Available", pending: "Pending",
    held: "Held", lifetimeEarned: "Earned in total", tier: "Tier", progress: "Points to next tier",
    capsToday: "Caps left today", expiring: "Expiring", history: "History", reason: "Reason",
    kind: "Kind", amount: "Amount", adjust: "Adjust points", note: "Note",
    blacklist: "Blacklist", unblacklist: "Remove from blacklist", decision: "Decision",
    review: "Review", checkIn: "Check-in streak", items: "Items", stock: "Stock",
    price: "Price", lottery: "Lottery", lotteryId: "Lottery id", prizes: "Prizes",
    odds: "Odds", remaining: "Remaining", seedCommitment: "Seed commitment",
    backends: "Services", deadLetters: "Dead letters", status: "Status", subject: "Subject",
    attempts: "Attempts", date: "Date", eventList: "Events", title_: "Title",
    redemptions: "Redemptions", sagaStep: "Saga step", shipment: "Shipment",
    markSHIPPED: "Mark shipped", markDELIVERED: "Mark delivered",
    lastExpiryRun: "Last expiry run", lots: "Lots", members: "Members",
    replay: "Replay", replayHelp: "or replay the events of the last days (as fresh members):",
    webhooks: "Webhooks", endpoint: "Endpoint", eventTypes: "Event types", subscribe: "Subscribe",
    disabled: "Disabled", rotate: "Rotate secret", previousSecret: "Old secret signs until",
    secretOnce: "The signing secret, shown this once: keep it where the receiver can read it.",
    deliveries: "Deliveries", more: "More", code: "Code", latency: "Latency", answer: "Answer",
    delivered: "Delivered", next: "Next attempt", redeliver: "Redeliver", all: "All",
    replayWindow: "Deliver again every event between", queued: "Deliveries queued",
    disabledWebhooks: "Webhooks the service disabled",
  },
  "zh-CN": {
    title: "积分运营后台", language: "语言", signIn: "登录", signOut: "退出",
    signInTitle: "登录",
    signInHelp: "粘贴带 admin 权限的运营令牌。令牌只保存在本标签页的内存中。",
    notAdmin: "该令牌没有 admin 权限。",
    economy: "积分经济", config: "规则与活动", simulate: "模拟", reviews: "审核",
    member: "会员", mall: "积分商城", health: "健康",
    from: "从", to: "到", refresh: "刷新",
    liability: "未兑付积分", issued: "发放", redeemed: "兑换", expired: "过期",
    reversed: "冲回", inReview: "审核中", breakage: "沉淀率",
    redemptionRate: "兑换率", issuanceRatio: "发放比例", cost: "成本",
    purchases: "消费额", perDay: "每日积分", byRule: "各规则成本",
    byCampaign: "各活动成本", tierExtra: "等级加成", budgets: "预算",
    budget: "预算", period: "周期", used: "已用", limit: "上限", points: "积分",
    id: "编号", rules: "规则", campaigns: "活动", tiers: "等级", capGroups: "上限组",
    edit: "编辑", save: "保存", saved: "已保存", new: "新建", enabled: "启用",
    enable: "启用", disable: "停用", versions: "版本", version: "版本",
    who: "操作人", when: "时间", compare: "对比", definition: "定义",
    draftRules: "草稿规则（JSON 列表）", draftCampaigns: "草稿活动（JSON 列表）",
    events: "事件（JSON 列表）", generate: "生成", generateHelp: "用户数 × 签到次数",
    run: "运行", today: "当前生效", draft: "草稿", total: "合计", rule: "规则",
    campaign: "活动", difference: "差异",
    user: "用户", event: "事件", type: "类型", reasons: "风险信号", recorded: "记录时间",
    approve: "批准所选", reject: "驳回所选", none: "暂无数据。",
    search: "查询", memberId: "会员编号", available: "可用", pending: "待生效",
    held: "冻结", lifetimeEarned: "累计获得", tier: "等级", progress: "距下一等级",
    capsToday: "今日剩余上限", expiring: "即将过期", history: "积分明细", reason: "原因",
    kind: "类型", amount: "数量", adjust: "调整积分", note: "备注",
    blacklist: "加入黑名单", unblacklist: "移出黑名单", decision: "决定",
    review: "审核", checkIn: "连续签到", items: "商品", stock: "库存",
    price: "价格", lottery: "抽奖", lotteryId: "抽奖编号", prizes: "奖品",
    odds: "概率", remaining: "剩余", seedCommitment: "种子承诺",
    backends: "服务", deadLetters: "死信", status: "状态", subject: "对象",
    attempts: "尝试次数", date: "日期", eventList: "事件", title_: "名称",
    redemptions: "兑换记录", sagaStep: "流程步骤", shipment: "发货",
    markSHIPPED: "标记已发货", markDELIVERED: "标记已签收",
    lastExpiryRun: "最近一次过期处理", lots: "批次", members: "会员数",
    replay: "回放", replayHelp: "或回放最近几天的真实事件（按新会员计算）：",
    webhooks: "Webhook", endpoint: "接收地址", eventTypes: "事件类型", subscribe: "订阅",
    disabled: "已停用", rotate: "轮换密钥", previousSecret: "旧密钥签名截止",
    secretOnce: "签名密钥仅显示这一次：请保存到接收方可读取的位置。",
    deliveries: "投递记录", more: "更多", code: "状态码", latency: "耗时", answer: "响应",
    delivered: "送达时间", next: "下次尝试", redeliver: "重新投递", all: "全部",
    replayWindow: "重新投递以下时间段的全部事件", queued: "已排队投递",
    disabledWebhooks: "被系统停用的 Webhook",
  },
};

let locale = "en";

export function setLocale(next) {
  locale = WORDS[next] ? next : "en";
  document.documentElement.lang = locale;
  for (const node of document.querySelectorAll("[data-i18n]")) {
    node.textContent = t(/** @type {HTMLElement} */ (node).dataset.i18n);
  }
}

export function getLocale() { return locale; }

export function t(key) { return WORDS[locale][key] ?? WORDS.en[key] ?? key; }

export function number(value) { return new Intl.NumberFormat(locale).format(value ?? 0); }

export function percent(part, whole) {
  if (!whole) return "—";
  return new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: 1 }).format(part / whole);
}

export function money(value) {
  if (!value) return "—";
  return new Intl.NumberFormat(locale, { style: "currency", currency: value.currency || "CNY" })
    .format(value.amount_minor / 100);
}

export function when(iso) {
  if (!iso) return "—";
  return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso));
}
