// @ts-check
// Words in English and Simplified Chinese, and numbers and dates in the chosen locale.
const WORDS = {
  en: {
    title: "Points console", language: "Language", signIn: "Sign in", signOut: "Sign out",
    signInCompany: "Sign in with your company account",
    signInTitle: "Sign in",
    signInHelp: "Paste an operator token (with a role: viewer, operator, finance or admin). It stays in this tab's memory only.",
    notAdmin: "This token carries no operator role.",
    economy: "Economy", config: "Rules & campaigns", simulate: "Simulate", reviews: "Reviews",
    member: "Member", members: "Members", mall: "Mall", health: "Health",
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
    backends: "Services", deadLetters: "Dead letters", status: "Status", statusWord: "Status", subject: "Subject",
    attempts: "Attempts", date: "Date", eventList: "Events", title_: "Title",
    redemptions: "Redemptions", sagaStep: "Saga step", shipment: "Shipment",
    markSHIPPED: "Mark shipped", markDELIVERED: "Mark delivered",
    lastExpiryRun: "Last expiry run", lots: "Lots", membersAffected: "Members",
    replay: "Replay", replayHelp: "or replay the events of the last days (as fresh members):",
    webhooks: "Webhooks", endpoint: "Endpoint", eventTypes: "Event types", subscribe: "Subscribe",
    disabled: "Disabled", rotate: "Rotate secret", previousSecret: "Old secret signs until",
    secretOnce: "The signing secret, shown this once: keep it where the receiver can read it.",
    deliveries: "Deliveries", more: "More", code: "Code", latency: "Latency", answer: "Answer",
    delivered: "Delivered", next: "Next attempt", redeliver: "Redeliver", all: "All",
    replayWindow: "Deliver again every event between", queued: "Deliveries queued",
    disabledWebhooks: "Webhooks the service disabled",
    overview: "Overview", notFound: "No such page.", loading: "Loading…",
    backendDown: "This part could not load:", retry: "Retry",
    reviewBacklog: "Reviews waiting", failingWebhooks: "Webhooks failing or disabled",
    budgetsNear: "Budgets at 80 % or more of their limit", lowStock: "Items low on stock (10 or fewer)",
    endingSoon: "Campaigns ending in the next 7 days", open: "Open", allClear: "Nothing needs you here.",
    liabilityValue: "Outstanding liability (value)", campaignCostNote:
      "Campaign and tier extras are part of each rule's points and cost above; this table breaks them out.",
    axisPoints: "Points per day", badDates: "Choose a start date on or before the end date.",
    unlimited: "Unlimited", cashPart: "Cash part", enabledState: "State", on: "On", off: "Off",
    perDayShort: "a day", moneyLimit: "money", shippingAddress: "Ship to", filter: "Filter",
    lotteries: "Lotteries", pointsPerDraw: "Points per draw", item: "Item", csv: "CSV",
    memberNotFound: "No member with this id: no points, transfers or events were ever recorded for it.",
    basePoints: "base", streakDay: "streak day", campaignExtra: "from campaigns", tierExtraShort: "from tier",
    pendingUntil: "pending until", cappedBy: "cut by", inReviewShort: "waits for review",
    waitingTotal: "waiting in all", selectAll: "Select all on this page", decided: "Decided",
    device: "device", ip: "IP", confirmDisable: "Disable it? It stops applying at once.",
    confirmReject: "Reject the selected events? Their points will never be credited.",
    confirmBlacklist: "Blacklist this member? Their events will be denied.",
    confirmRotate: "Rotate the signing secret? The old one keeps signing for a while.",
    confirmReplay: "Deliver every event in this window again?",
    confirmAdjust: "Adjust this member's points?",
    replayCapped: "A replay takes at most 1,000 events: these figures cover the newest 1,000 of the window.",
    usersLabel: "Members", timesLabel: "Check-ins each (one a day)", daysLabel: "Days to replay",
    newItem: "New item", itemId: "Item id", stockUnlimited: "Never runs out",
    perUserLimit: "Per member", description: "Description", pointsPrice: "Points price",
    statusAny: "Any status", prev: "Previous", pageOf: "page",
    dayShort: "day", weekShort: "week", nextPage: "Next page",
    ruleName: "Name", ruleKind: "Kind", eventType: "Event", pointsEach: "Points each time",
    streakPoints: "Points by streak day (comma-separated)", cycle: "Start over after the last day",
    pointsPerStep: "Points per step", stepMinor: "Step (minor units, e.g. 5000 = ¥50)", currency: "Currency",
    pendingDays: "Days pending (return window)", perItem: "Once per item", perMinutes: "Minutes per step",
    dailyCap: "Daily cap", weeklyCap: "Weekly cap", monthlyCap: "Monthly cap", lifetimeCap: "Lifetime cap",
    capGroup: "Cap group", expiryDays: "Points expire after (days)", multiplierPercent: "Multiplier (%)",
    bonusPoints: "Bonus points", audience: "Audience", newUserDays: "New for (days)", startAt: "Starts",
    endAt: "Ends", asJson: "Edit as JSON", field: "Field", before: "Before", after: "After",
    givesAction: "{points} points each time", givesCheckIn: "{low}–{high} points a day, streak of {days}",
    givesCheckInFlat: "{low} points a day", givesPurchase: "{points} points per {step}",
    givesTask: "{points} points once", givesTaskPerItem: "{points} points per item",
    givesOnline: "{points} points per {minutes} min", givesInvite: "{points} points per invitation",
    capDay: "at most {points} a day", noChange: "No field changed.", idPrefix: "Id starts with", found: "Found", newLottery: "New lottery",
    audit: "Audit log", auditLog: "Audit log", approvals: "Approvals", approveOne: "Approve",
    rejectOne: "Reject", confirmRejectChange: "Reject this change? It will not be made.",
    approvalPENDING: "Waiting", approvalAPPROVED: "Being carried out", approvalDONE: "Approved and done",
    approvalREJECTED: "Rejected", sentForApproval: "Sent for approval: a second person (finance or admin) decides.", action: "Action", target: "Target", from_: "From",
    minAvailable: "Available at least", inactiveSince: "No change since", lastMoved: "Points last moved", deadLettersRules: "Dead letters: rules",
    deadLettersMall: "Dead letters: mall", gaveUp: "Disabled after repeated failed deliveries",
    experiments: "Experiments", experiment: "Experiment", newExperiment: "New experiment", experimentId: "Experiment id",
    arms: "Arms", arm: "Arm", adaptive: "Adaptive", yes: "Yes", no: "No", share: "Share", changes: "What it changes",
    holdoutMeans: "nothing it tests", controlMeans: "the program in force", startExperiment: "Start",
    concludeExperiment: "Conclude", confirmConclude: "Conclude this experiment? Every member earns by the program again.",
    confirmPromote: "Promote this arm? Its draft rules and campaigns become new versions for every member, and the experiment ends.",
    promoteArm: "Promote arm {arm}", mean: "Mean per member", significant: "Significant",
    differenceFromControl: "Difference from the control, with its interval", noResultsYet: "No results yet: the experiment has not started.",
    enoughData: "Enough data: the experiment has run long enough with enough members in every arm.",
    notEnoughData: "Too early to decide: {days} days run (at least {minDays}), and every arm needs {members} members.",
    primaryMetric: "Decided by", confidenceOf: "{n}% confidence", costPerActive: "Cost per extra active member",
    armOf: "arm {arm} of {experiment}", armRoleHead: "Role",
    budgetUsed: "Budget: {used} of {limit} points awarded by what it tests.",
  },
  "zh-CN": {
    title: "积分运营后台", language: "语言", signIn: "登录", signOut: "退出",
    signInCompany: "使用公司账号登录",
    signInTitle: "登录",
    signInHelp: "粘贴运营令牌（须带角色：viewer、operator、finance 或 admin）。令牌只保存在本标签页的内存中。",
    notAdmin: "该令牌没有运营角色。",
    economy: "积分经济", config: "规则与活动", simulate: "模拟", reviews: "审核",
    member: "会员", members: "会员", mall: "积分商城", health: "健康",
    from: "从", to: "到", refresh: "刷新",
    liability: "未兑付积分", issued: "发放", redeemed: "兑换", expired: "过期",
    reversed: "冲回", inReview: "审核中", breakage: "沉淀率",
    redemptionRate: "兑换率", issuanceRatio: "发放比例", cost: "成本",
    purchases: "消费额", perDay: "每日积分", byRule: "各规则成本",
    byCampaign: "各活动成本", tierExtra: "等级加成", budgets: "预算",
    budget: "预算", period: "周期", used: "已用", limit: "上限", points: "积分",
    id: "编号", rules: "规则", campaigns: "活动", tiers: "等级", capGroups: "上限组",
    edit: "编辑", save: "保存", saved: "已保存", new: "新建", enabled: "已启用",
    enable: "启用", disable: "停用", versions: "版本", version: "版本",
    who: "操作人", when: "时间", compare: "对比", definition: "定义",
    draftRules: "草稿规则（JSON 列表）", draftCampaigns: "草稿活动（JSON 列表）",
    events: "事件（JSON 列表）", generate: "生成", generateHelp: "用户数 × 签到次数",
    run: "运行", today: "当前生效", draft: "草稿", total: "合计", rule: "规则",
    campaign: "活动", difference: "差异",
    user: "用户", event: "事件", type: "类型", reasons: "风险信号", recorded: "记录时间",
    approve: "批准所选", reject: "驳回所选", none: "暂无数据。",
    search: "查询", memberId: "会员编号", available: "可用", pending: "待入账",
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
    lastExpiryRun: "最近一次过期处理", lots: "批次", membersAffected: "会员数",
    replay: "回放", replayHelp: "或回放最近几天的真实事件（按新会员计算）：",
    webhooks: "Webhook", endpoint: "接收地址", eventTypes: "事件类型", subscribe: "订阅",
    disabled: "已停用", rotate: "轮换密钥", previousSecret: "旧密钥签名截止",
    secretOnce: "签名密钥仅显示这一次：请保存到接收方可读取的位置。",
    deliveries: "投递记录", more: "更多", code: "状态码", latency: "耗时", answer: "响应",
    delivered: "送达时间", next: "下次尝试", redeliver: "重新投递", all: "全部",
    replayWindow: "重新投递以下时间段的全部事件", queued: "已排队投递",
    disabledWebhooks: "被系统停用的 Webhook",
    overview: "待处理", notFound: "没有这个页面。", loading: "加载中…",
    backendDown: "这一部分未能加载：", retry: "重试",
    reviewBacklog: "待审核事件", failingWebhooks: "投递失败或已停用的 Webhook",
    budgetsNear: "已用 80% 以上的预算", lowStock: "库存不多的商品（10 件及以下）",
    endingSoon: "7 天内结束的活动", open: "查看", allClear: "这里没有需要处理的事项。",
    liabilityValue: "未兑付积分价值", campaignCostNote: "活动和等级加成已计入上表各规则的积分与成本，此表单独列出。",
    axisPoints: "每日积分", badDates: "开始日期不能晚于结束日期。",
    unlimited: "不限量", cashPart: "现金部分", enabledState: "状态", on: "启用中", off: "已停用",
    perDayShort: "每天", moneyLimit: "金额", shippingAddress: "收货地址", filter: "筛选",
    lotteries: "抽奖活动", pointsPerDraw: "每次消耗积分", item: "商品", csv: "导出 CSV",
    memberNotFound: "没有这个会员：该编号从未有过积分、流水或事件。",
    basePoints: "基础", streakDay: "连续第几天", campaignExtra: "活动加成", tierExtraShort: "等级加成",
    pendingUntil: "待生效，生效时间", cappedBy: "被上限削减：", inReviewShort: "等待审核",
    waitingTotal: "条待审核", selectAll: "全选本页", decided: "已处理",
    device: "设备", ip: "IP", confirmDisable: "确定停用？停用后立即不再生效。",
    confirmReject: "确定驳回所选事件？这些积分将不会发放。",
    confirmBlacklist: "确定将该会员加入黑名单？其事件将被拒绝。",
    confirmRotate: "确定轮换签名密钥？旧密钥还会继续签名一段时间。",
    confirmReplay: "确定重新投递该时间段内的全部事件？",
    confirmAdjust: "确定调整该会员的积分？",
    replayCapped: "一次回放最多 1,000 个事件：以上结果只包含该时段内最新的 1,000 个。",
    usersLabel: "会员数", timesLabel: "每人签到次数（每天一次）", daysLabel: "回放天数",
    newItem: "新建商品", itemId: "商品编号", stockUnlimited: "不限库存",
    perUserLimit: "每人限兑", description: "描述", pointsPrice: "所需积分",
    statusAny: "全部状态", prev: "上一页", pageOf: "页",
    dayShort: "天", weekShort: "周", nextPage: "下一页",
    ruleName: "名称", ruleKind: "类型", eventType: "事件", pointsEach: "每次积分",
    streakPoints: "连续签到每天的积分（逗号分隔）", cycle: "最后一天后重新开始",
    pointsPerStep: "每档积分", stepMinor: "每档金额（分，如 5000 = 50 元）", currency: "币种",
    pendingDays: "待入账天数（退货期）", perItem: "每个项目各一次", perMinutes: "每档分钟数",
    dailyCap: "每日上限", weeklyCap: "每周上限", monthlyCap: "每月上限", lifetimeCap: "终身上限",
    capGroup: "上限组", expiryDays: "积分有效期（天）", multiplierPercent: "倍数（%）",
    bonusPoints: "额外积分", audience: "适用人群", newUserDays: "新用户天数", startAt: "开始",
    endAt: "结束", asJson: "以 JSON 编辑", field: "字段", before: "修改前", after: "修改后",
    givesAction: "每次 {points} 积分", givesCheckIn: "每天 {low}–{high} 积分，连续 {days} 天",
    givesCheckInFlat: "每天 {low} 积分", givesPurchase: "每 {step} 得 {points} 积分",
    givesTask: "一次性 {points} 积分", givesTaskPerItem: "每项 {points} 积分",
    givesOnline: "每 {minutes} 分钟 {points} 积分", givesInvite: "每邀请一人 {points} 积分",
    capDay: "每天最多 {points}", noChange: "没有字段改变。", idPrefix: "编号开头", found: "查询结果", newLottery: "新建抽奖",
    audit: "审计日志", auditLog: "审计日志", approvals: "审批", approveOne: "批准",
    rejectOne: "驳回", confirmRejectChange: "确定驳回这项变更？它不会被执行。",
    approvalPENDING: "待审批", approvalAPPROVED: "执行中", approvalDONE: "已批准并执行",
    approvalREJECTED: "已驳回", sentForApproval: "已提交审批：需由另一位财务或管理员决定。", action: "操作", target: "对象", from_: "来源",
    minAvailable: "可用积分至少", inactiveSince: "此日期后无变动", lastMoved: "积分最近变动", deadLettersRules: "死信：规则服务",
    deadLettersMall: "死信：商城服务", gaveUp: "多次投递失败后被停用",
    experiments: "实验", experiment: "实验", newExperiment: "新建实验", experimentId: "实验编号",
    arms: "实验组", arm: "组", adaptive: "自适应分配", yes: "是", no: "否", share: "分配比例", changes: "改动内容",
    holdoutMeans: "不享受所测规则", controlMeans: "现行方案", startExperiment: "开始",
    concludeExperiment: "结束实验", confirmConclude: "确定结束该实验？所有会员将恢复按现行方案获得积分。",
    confirmPromote: "确定推广该组？其草稿规则和活动将作为新版本对所有会员生效，实验随之结束。",
    promoteArm: "推广 {arm} 组", mean: "人均值", significant: "显著",
    differenceFromControl: "与对照组的差异及置信区间", noResultsYet: "暂无结果：实验尚未开始。",
    enoughData: "数据已足够：实验时长和每组人数都已达到要求。",
    notEnoughData: "尚不能下结论：已运行 {days} 天（至少 {minDays} 天），且每组需要 {members} 名会员。",
    primaryMetric: "主要指标", confidenceOf: "置信度 {n}%", costPerActive: "每增加一名活跃会员的成本",
    armOf: "实验 {experiment} 的 {arm} 组", armRoleHead: "角色",
    budgetUsed: "预算：所测规则和活动已发放 {used} 积分，上限 {limit}。",
  },
};


// Every code the API answers that a person reads, by the field it comes from: the same code
// can mean different things (a PENDING shipment waits to be sent, a PENDING delivery to be
// delivered). Codes not listed here (an app's own event types) are shown as they are.
const CODES = {
  en: {
    kind: { CHECK_IN: "Check-in", ACTION: "Action", PURCHASE: "Purchase", TASK: "Task", ONLINE_TIME: "Online time", INVITE: "Invite" },
    event: {
      CHECK_IN: "Check-in", LIKE: "Like", SHARE: "Share", COMMENT: "Comment", FORWARD: "Forward",
      PURCHASE: "Purchase", REFUND: "Refund", REGISTER: "Sign-up", PROFILE_COMPLETED: "Profile completed",
      LESSON_COMPLETED: "Lesson completed", TASK_COMPLETED: "Task completed", ONLINE_TIME: "Online time",
    },
    decision: { ALLOW: "Allowed", REVIEW: "In review", DENY: "Denied" },
    review: { PENDING: "Waiting", APPROVED: "Approved", REJECTED: "Rejected", UNSPECIFIED: "" },
    risk: {
      BLACKLISTED_USER: "Blacklisted member", BLACKLISTED_DEVICE: "Blacklisted device", BLACKLISTED_IP: "Blacklisted IP",
      VELOCITY: "Too many events a minute", BURST: "Burst of events", SHARED_DEVICE: "Device shared by many accounts",
      SHARED_IP: "IP shared by many accounts", INVITE_BURST: "Referrer inviting in bulk", REFUND_LOOP: "Keeps refunding",
    },
    award: {
      CAPPED: "Cap reached", ALREADY_CHECKED_IN: "Already checked in today", ALREADY_COMPLETED: "Already completed",
      ALREADY_REWARDED: "Already rewarded", NOTHING_EARNED: "Nothing earned", NO_REFERRER: "No referrer",
    },
    transfer: {
      EARN: "Earned", SPEND: "Spent", HOLD: "Held", CAPTURE: "Captured", RELEASE: "Released",
      REVERSAL: "Reversed", EXPIRY: "Expired", ADJUSTMENT: "Adjusted",
    },
    reasonCode: {
      RULE_AWARD: "Rule award", OPERATOR_ADJUSTMENT: "Operator adjustment", CHECKOUT: "Points as cash",
      ORDER_REFUNDED: "Order refunded", REDEMPTION_CANCELLED: "Redemption cancelled", REDEEM: "Redemption",
      LOTTERY_DRAW: "Lottery draw", LOTTERY_PRIZE: "Lottery prize", LOTTERY_PRIZE_REFUSED: "Prize not paid",
      HOLD_EXPIRED: "Hold expired", HOLD_RELEASED: "Hold released", OPENING_BALANCE: "Opening balance",
      RULE_REVERSAL: "Award reversed", EXPIRY: "Expiry",
    },
    redemption: { PENDING: "In progress", COMPLETED: "Completed", FAILED: "Failed", CANCELLED: "Cancelled" },
    step: {
      STARTED: "Started", HOLD_PLACED: "Points held", STOCK_RESERVED: "Stock reserved", FULFILLED: "Fulfilled",
      COMPLETED: "Completed", CANCELLED: "Cancelled", FAILED: "Failed",
    },
    shipment: { PENDING: "To ship", SHIPPED: "Shipped", DELIVERED: "Delivered", UNSPECIFIED: "" },
    itemType: { PHYSICAL: "Physical goods", VIRTUAL: "Virtual goods", COUPON: "Coupon", POINTS_PLUS_CASH: "Points + cash" },
    prize: { POINTS: "Points", COUPON: "Coupon", ITEM: "Item" },
    limitPeriod: { DAY: "a day", MONTH: "a month", LIFETIME: "in total", UNSPECIFIED: "" },
    period: { DAY: "Daily", MONTH: "Monthly", TOTAL: "In total" },
    overBudget: { CUT: "cut", REFUSE: "refuse" },
    serving: {
      SERVING: "Serving", NOT_SERVING: "Not serving", UNKNOWN: "Unknown", SERVICE_UNKNOWN: "Unknown",
      UNAVAILABLE: "Down", DEADLINE_EXCEEDED: "Too slow", UNIMPLEMENTED: "No health check",
    },
    letter: { OPEN: "Open", RETRIED: "Retried", RESOLVED: "Resolved" },
    delivery: { PENDING: "Waiting", DELIVERED: "Delivered", FAILED: "Failed" },
    blacklist: { USER: "Member", DEVICE: "Device", IP: "IP" },
    audience: { ALL: "Everyone", NEW_USERS: "New members", UNSPECIFIED: "Everyone" },
    experimentStatus: { DRAFT: "Draft", RUNNING: "Running", CONCLUDED: "Concluded" },
    armRole: { CONTROL: "Control", TREATMENT: "Treatment", HOLDOUT: "Holdout" },
    metric: {
      ACTIVE_DAYS: "Active days per member", EVENTS: "Events per member", RETENTION_7D: "7-day retention",
      RETENTION_30D: "30-day retention", REDEMPTION: "Redemption rate", POINTS: "Points per member",
    },
  },
  "zh-CN": {
    kind: { CHECK_IN: "签到", ACTION: "互动", PURCHASE: "消费", TASK: "任务", ONLINE_TIME: "在线时长", INVITE: "邀请" },
    event: {
      CHECK_IN: "签到", LIKE: "点赞", SHARE: "分享", COMMENT: "评论", FORWARD: "转发",
      PURCHASE: "消费", REFUND: "退款", REGISTER: "注册", PROFILE_COMPLETED: "完善资料",
      LESSON_COMPLETED: "完成课程", TASK_COMPLETED: "完成任务", ONLINE_TIME: "在线时长",
    },
    decision: { ALLOW: "通过", REVIEW: "待审核", DENY: "拒绝" },
    review: { PENDING: "待审核", APPROVED: "已批准", REJECTED: "已驳回", UNSPECIFIED: "" },
    risk: {
      BLACKLISTED_USER: "黑名单会员", BLACKLISTED_DEVICE: "黑名单设备", BLACKLISTED_IP: "黑名单 IP",
      VELOCITY: "每分钟事件过多", BURST: "短时事件激增", SHARED_DEVICE: "一台设备多个账号",
      SHARED_IP: "一个 IP 多个账号", INVITE_BURST: "邀请人批量邀请", REFUND_LOOP: "频繁退款",
    },
    award: {
      CAPPED: "已达上限", ALREADY_CHECKED_IN: "今天已签到", ALREADY_COMPLETED: "已完成过",
      ALREADY_REWARDED: "已奖励过", NOTHING_EARNED: "未获得积分", NO_REFERRER: "没有邀请人",
    },
    transfer: {
      EARN: "获得", SPEND: "消耗", HOLD: "冻结", CAPTURE: "扣除", RELEASE: "解冻",
      REVERSAL: "冲回", EXPIRY: "过期", ADJUSTMENT: "调整",
    },
    reasonCode: {
      RULE_AWARD: "规则奖励", OPERATOR_ADJUSTMENT: "人工调整", CHECKOUT: "积分抵现",
      ORDER_REFUNDED: "订单退款", REDEMPTION_CANCELLED: "兑换取消", REDEEM: "兑换",
      LOTTERY_DRAW: "抽奖", LOTTERY_PRIZE: "抽奖奖品", LOTTERY_PRIZE_REFUSED: "奖品未发放",
      HOLD_EXPIRED: "冻结到期", HOLD_RELEASED: "冻结释放", OPENING_BALANCE: "期初余额",
      RULE_REVERSAL: "奖励冲回", EXPIRY: "过期",
    },
    redemption: { PENDING: "处理中", COMPLETED: "已完成", FAILED: "失败", CANCELLED: "已取消" },
    step: {
      STARTED: "已开始", HOLD_PLACED: "已冻结积分", STOCK_RESERVED: "已锁定库存", FULFILLED: "已发放",
      COMPLETED: "已完成", CANCELLED: "已取消", FAILED: "失败",
    },
    shipment: { PENDING: "待发货", SHIPPED: "已发货", DELIVERED: "已签收", UNSPECIFIED: "" },
    itemType: { PHYSICAL: "实物", VIRTUAL: "虚拟商品", COUPON: "优惠券", POINTS_PLUS_CASH: "积分+现金" },
    prize: { POINTS: "积分", COUPON: "优惠券", ITEM: "商品" },
    limitPeriod: { DAY: "每天", MONTH: "每月", LIFETIME: "共计", UNSPECIFIED: "" },
    period: { DAY: "每日", MONTH: "每月", TOTAL: "总计" },
    overBudget: { CUT: "削减", REFUSE: "拒绝" },
    serving: {
      SERVING: "正常", NOT_SERVING: "未就绪", UNKNOWN: "未知", SERVICE_UNKNOWN: "未知",
      UNAVAILABLE: "不可用", DEADLINE_EXCEEDED: "响应超时", UNIMPLEMENTED: "无健康检查",
    },
    letter: { OPEN: "待处理", RETRIED: "已重试", RESOLVED: "已解决" },
    delivery: { PENDING: "待投递", DELIVERED: "已送达", FAILED: "失败" },
    blacklist: { USER: "会员", DEVICE: "设备", IP: "IP" },
    audience: { ALL: "所有会员", NEW_USERS: "新会员", UNSPECIFIED: "所有会员" },
    experimentStatus: { DRAFT: "草稿", RUNNING: "进行中", CONCLUDED: "已结束" },
    armRole: { CONTROL: "对照组", TREATMENT: "实验组", HOLDOUT: "保留组" },
    metric: {
      ACTIVE_DAYS: "人均活跃天数占比", EVENTS: "人均事件数", RETENTION_7D: "7 日留存",
      RETENTION_30D: "30 日留存", REDEMPTION: "兑换率", POINTS: "人均积分",
    },
  },
};

// What an HTTP status means to an operator, when the API's own words are not enough.
const STATUS = {
  en: {
    400: "The input is not valid.", 401: "Signed out: sign in again.", 403: "Not allowed for this account.",
    404: "Not found.", 409: "It changed in the meantime: reload and try again.",
    422: "The request cannot be applied.", 429: "Too many requests: wait a moment and retry.",
    503: "A service is unavailable. Retry in a moment; nothing was changed twice.",
    504: "A service took too long. Retry in a moment; nothing was changed twice.",
    network: "The console cannot reach the gateway.",
  },
  "zh-CN": {
    400: "输入无效。", 401: "登录已失效，请重新登录。", 403: "当前账号无权执行此操作。",
    404: "未找到。", 409: "数据已被修改，请刷新后重试。",
    422: "该请求无法执行。", 429: "请求过于频繁，请稍后重试。",
    503: "有服务暂不可用，请稍后重试；不会重复执行。",
    504: "服务响应超时，请稍后重试；不会重复执行。",
    network: "无法连接网关。",
  },
};

// The API's stable reasons, in Chinese (English pages show the API's own detail instead).
const REASONS_ZH = {
  INSUFFICIENT_POINTS: "积分不足。", IDEMPOTENCY_KEY_REUSED: "同一请求键已用于另一请求。",
  REQUEST_IN_PROGRESS: "同一请求仍在处理中，请稍后重试。", SHIPMENT_NOT_UPDATABLE: "发货状态不能这样变更。",
  OUT_OF_STOCK: "库存不足。", USER_LIMIT_REACHED: "已达每人限兑数量。", ITEM_NOT_FOUND: "没有这个商品。",
  LOTTERY_NOT_FOUND: "没有这个抽奖活动。", REDEMPTION_NOT_FOUND: "没有这条兑换记录。",
  REVIEW_NOT_FOUND: "该事件不在审核队列中（可能已被处理）。", SUBSCRIPTION_NOT_FOUND: "没有这个 Webhook 订阅。",
  DELIVERY_NOT_FOUND: "没有这条投递记录。", ENDPOINT_NOT_ALLOWED: "不允许投递到这个地址。",
  MISSING_TOKEN: "请先登录。", INVALID_TOKEN: "登录凭证无效，请重新登录。", TOKEN_EXPIRED: "登录已过期，请重新登录。",
  MISSING_SCOPE: "当前账号无权执行此操作。", DEPENDENCY_UNAVAILABLE: "有服务暂不可用，请稍后重试。",
  AMOUNT_EXCEEDS_REVERSIBLE: "金额超过可冲回的数量。", DEAD_LETTER_NOT_OPEN: "该死信已处理。",
  EXPERIMENT_NOT_FOUND: "没有这个实验。", EXPERIMENT_NOT_DRAFT: "实验已开始，不能再修改或重新开始。",
  EXPERIMENT_OVERLAP: "另一个进行中的实验正在测试相同的规则或活动。", EXPERIMENT_NOT_RUNNING: "该实验不在进行中。",
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

// The words of `key` with each {name} replaced by vars[name].
export function fill(key, vars) { return t(key).replace(/\{(\w+)\}/g, (_, name) => String(vars[name])); }

// The label of an API code (`field` as in CODES); the code itself when it has none.
export function label(field, code) {
  if (code == null) return "";
  return CODES[locale][field]?.[code] ?? CODES.en[field]?.[code] ?? String(code);
}

// A cap or budget that cut an award ("rule_daily_cap", "group:x", "budget:y"), in words.
export function cutBy(value) {
  const [kind, name] = value.split(":");
  const words = locale === "zh-CN"
    ? { rule_daily_cap: "规则每日上限", rule_weekly_cap: "规则每周上限", group: "上限组", budget: "预算" }
    : { rule_daily_cap: "the rule's daily cap", rule_weekly_cap: "the rule's weekly cap", group: "cap group", budget: "budget" };
  return name ? `${words[kind] ?? kind} ${name}` : (words[kind] ?? kind);
}

// A reason stored as "CODE: details" (a webhook the service disabled), in words.
export function reasonText(text) {
  const [, code, rest] = /^([A-Z_]+): (.*)$/s.exec(text || "") || [];
  if (code !== "DELIVERY_GAVE_UP") return text || "";
  return locale === "en" ? `${t("gaveUp")}: ${rest}` : t("gaveUp");
}

// What an API refusal means, in the page's language: the reason's words in Chinese, else none.
export function reasonWords(reason) { return locale === "zh-CN" ? REASONS_ZH[reason] ?? "" : ""; }

export function statusText(status) { return STATUS[locale][status] ?? STATUS.en[status] ?? `HTTP ${status}`; }

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

// A plain date ("2026-12-06") in the locale's words, read as a calendar day.
export function day(isoDate) {
  if (!isoDate) return "—";
  return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeZone: "UTC" }).format(new Date(`${isoDate}T00:00:00Z`));
}

// A short day for a chart axis ("12/06", "12月6日").
export function shortDay(isoDate) {
  return new Intl.DateTimeFormat(locale, { month: "numeric", day: "numeric", timeZone: "UTC" }).format(new Date(`${isoDate}T00:00:00Z`));
}
