"""Examples for every operation of the OpenAPI document.

Configuration bodies are written by hand (a generated rule would be valid JSON but a program no
operator would run); everything else is built from its schema with realistic values chosen by
field name, so an example can never drift from the model it shows. Redocly checks each example
against its schema in `make lint`, and a test sends the hand-written bodies to a live gateway.
"""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]

# A time for what the server only reports (answers, report ranges, a campaign's window). No
# request example carries a time the server judges against its own clock (an event's
# `occurred_at` must fall within the last days): those are left out, meaning "now", so that an
# example copied from the document is accepted on any date.
SHOWN_AT = "2026-11-25T08:00:00Z"
SHOWN_DAY_END = "2026-11-26T08:00:00Z"  # the end of a one-day window starting at SHOWN_AT
SHOWN_UNTIL = "2027-11-25T08:00:00Z"

# Request bodies worth writing by hand, by schema name: the seed program's own numbers (in an
# order that works when sent one after another: the budget before the campaign drawing on it).
REQUESTS: dict[str, Any] = {
    "RulesRuleIn": {
        "kind": "PURCHASE",
        "event_type": "PURCHASE",
        "purchase": {"points": 10, "per_amount_minor": 5000, "currency": "CNY", "pending_days": 7},
        "expiry_days": 365,
        "enabled": True,
    },
    "RulesBudgetIn": {"points_limit": 1_000_000, "period": "MONTH", "over_budget": "CUT"},
    "RulesCampaignIn": {
        "event_types": ["CHECK_IN", "PURCHASE"],
        "multiplier_percent": 200,
        "audience": "ALL",
        "start_at": SHOWN_AT,
        "end_at": SHOWN_UNTIL,
        "budget_id": "weekend-2026",
        "enabled": True,
    },
    "RulesTierIn": {"name": "Gold", "min_points_12m": 5000, "multiplier_percent": 150},
    "CapGroup": {"daily_cap": 20},
    "MallItemIn": {
        "type": "COUPON",
        "title": "20 yuan off",
        "description": "Valid on orders from 100 yuan",
        "points_price": 100,
        "stock": 1000,
        "per_user_limit": 1,
        "limit_period": "MONTH",
        "coupon_value": {"amount_minor": 2000, "currency": "CNY"},
        "coupon_min_spend": {"amount_minor": 10000, "currency": "CNY"},
        "code_valid_days": 30,
        "enabled": True,
    },
    "MallLotteryIn": {
        "title": "Lucky wheel",
        "points_per_draw": 10,
        "daily_draws_per_user": 3,
        "no_prize_weight": 90,
        "prizes": [
            {"prize_id": "p500", "kind": "POINTS", "weight": 9, "points": 500, "stock": 100},
            {
                "prize_id": "c20",
                "kind": "COUPON",
                "weight": 1,
                "stock": 10,
                "coupon_value": {"amount_minor": 2000, "currency": "CNY"},
            },
        ],
        "enabled": True,
    },
    "EventIn": {
        "user_id": "u-1001",
        "type": "PURCHASE",
        "order_id": "order-20261125-0001",
        "amount_minor": 14999,
        "currency": "CNY",
        "device_id": "d-7f3a",
        "ip": "203.0.113.7",
    },
    "BatchIn": {
        "events": [
            {"event_id": "e-1", "user_id": "u-1001", "type": "CHECK_IN"},
            {"event_id": "e-2", "user_id": "u-1001", "type": "LIKE"},
        ]
    },
    "RulesSimulateEventsRequestIn": {
        "draft_rules": [
            {
                "rule_id": "like",
                "kind": "ACTION",
                "event_type": "LIKE",
                "action": {"points": 2},
                "daily_cap": 5,
                "enabled": True,
            }
        ],
        "events": [
            {"event_id": "s-1", "user_id": "u-1001", "type": "LIKE"},
            {"event_id": "s-2", "user_id": "u-1001", "type": "LIKE"},
        ],
    },
    "RulesExperimentIn": {
        "name": "Likes x2",
        "description": "Do members like more when a like earns twice the points?",
        "arms": [
            {"arm_id": "a", "name": "Today's program", "role": "CONTROL", "share_bp": 4500},
            {
                "arm_id": "b",
                "name": "2 points a like",
                "role": "TREATMENT",
                "share_bp": 4500,
                "rules": [
                    {
                        "rule_id": "like",
                        "kind": "ACTION",
                        "event_type": "LIKE",
                        "action": {"points": 2},
                        "daily_cap": 10,
                        "enabled": True,
                    }
                ],
            },
            {"arm_id": "h", "name": "Holdout", "role": "HOLDOUT", "share_bp": 1000},
        ],
        "audience": "ALL",
        "end_at": SHOWN_UNTIL,
        "primary_metric": "EVENTS",
        "event_types": ["LIKE"],
        "confidence_percent": 95,
        "min_days": 14,
        "min_members": 500,
    },
    "BlacklistEntry": {"kind": "USER", "value": "u-666", "reason": "scripted sign-ups"},
    "AdjustmentIn": {"points": 500, "note": "goodwill for a late delivery"},
}

# Values by field name, for what is built from a schema.
BY_NAME: dict[str, Any] = {
    "user_id": "u-1001",
    "value": "u-666",
    "currency": "CNY",
    "amount_minor": 10000,
    "discount_minor": 2000,
    "order_id": "order-20261125-0001",
    "item_id": "c20",
    "redemption_id": "r-8c1d",
    "lottery_id": "lucky",
    "draw_id": "dr-51f0",
    "event_id": "e-1",
    "rule_id": "purchase",
    "campaign_id": "weekend-2026",
    "budget_id": "weekend-2026",
    "tier_id": "gold",
    "name": "activity",
    "prize_id": "p500",
    "code": "CP-7Q4K-93XD",
    "title": "20 yuan off",
    "note": "goodwill for a late delivery",
    "letter_id": "42",
    "service": "rules",
    "decision": "ALLOW",
    "points": 100,
    "total_points": 100,
    "available": 5200,
    "pending": 100,
    "held": 0,
    "limit": 50,
    "page_token": "",
    "next_page_token": "",
    "device_id": "d-7f3a",
    "ip": "203.0.113.7",
    "carrier": "SF Express",
    "tracking_number": "SF1234567890",
    "shipping_address": "Room 1201, 88 Century Avenue, Pudong, Shanghai",
    "transfer_id": "t-3f9a61",
    "reason_code": "PURCHASE",
    "failure_reason": "",
    "status": "COMPLETED",
    "shipment_status": "UNSPECIFIED",
    "kind": "EARN",
    "date": "2027-11-25",
    "today": "2026-11-25",
    "amount": 100,
    "streak": 3,
    "quantity": 1,
    "daily_cap": 5,
    "earned_today": 3,
    "remaining_today": 2,
    "multiplier_percent": 100,
    "next_tier_id": "platinum",
    "points_to_next": 4800,
    "points_12m": 5200,
    "lifetime_earned": 12000,
    "lifetime_spent": 6500,
    "lifetime_expired": 300,
    "lifetime_reversed": 0,
    "cash_due_minor": 0,
    "experiment_id": "like-x2",
    "arm_id": "b",
    "share_bp": 4500,
    # An experiment's figures.
    "mean": 4.2,
    "difference": 0.8,
    "low": 0.3,
    "high": 1.3,
    "p_value": 0.002,
    "relative": 0.19,
    # Composite values, where a generated one would read oddly.
    "metadata": {"order_id": "order-20261125-0001"},
    "backends": {"ledger": "SERVING", "rules": "SERVING", "mall": "SERVING"},
    "degraded": [],
    "risk_reasons": [],
}


def build(schema: JSON, document: JSON, name: str = "", seen: tuple[str, ...] = ()) -> Any:
    """An example value of `schema` (refs resolved in `document`), named `name` in its parent;
    `seen` holds the schemas being built, so that a recursive one stops."""
    if "$ref" in schema:
        target = schema["$ref"].rsplit("/", 1)[-1]
        if target in REQUESTS:
            return REQUESTS[target]
        if target in seen:
            return None
        found = document["components"]["schemas"][target]
        return build(found, document, name, (*seen, target))
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return build(options[0], document, name, seen) if options else None
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return _enum(schema, name)
    if "examples" in schema:
        return schema["examples"][0]
    return _by_type(schema, document, name, seen)


def _enum(schema: JSON, name: str) -> Any:
    choices = schema["enum"]
    known = BY_NAME.get(name)
    pick = known if known in choices else next((c for c in choices if c != "UNSPECIFIED"), None)
    return pick if pick is not None else choices[0]


def _by_type(schema: JSON, document: JSON, name: str, seen: tuple[str, ...]) -> Any:
    kind = schema.get("type")
    if kind in ("object", "array") and isinstance(BY_NAME.get(name), dict | list):
        return BY_NAME[name]
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        if not properties and isinstance(schema.get("additionalProperties"), dict):
            return {"key": build(schema["additionalProperties"], document, "", seen)}
        return {key: build(sub, document, key, seen) for key, sub in properties.items()}
    if kind == "array":
        return [build(schema.get("items", {}), document, name.removesuffix("s"), seen)]
    if "default" in schema and schema["default"] not in ("", 0):
        return schema["default"]
    if kind == "integer":
        return _integer(schema, name)
    if kind == "number":
        known = BY_NAME.get(name)
        return known if isinstance(known, float) else 0.5
    if kind == "boolean":
        return name in ("enabled", "valid", "ok")
    if kind == "string":
        return _string(schema, name)
    return None


def _integer(schema: JSON, name: str) -> int:
    known = BY_NAME.get(name)
    value = known if type(known) is int else (100 if "points" in name else 1)
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None:
        value = max(value, int(low))
    if high is not None:
        value = min(value, int(high))
    return int(value)


def _string(schema: JSON, name: str) -> str:
    if schema.get("format") == "date-time" or name.endswith("_at"):
        return SHOWN_DAY_END if name in ("end", "end_time", "end_at") else SHOWN_AT
    pattern = schema.get("pattern", "")
    if pattern == "^[A-Z]{3}$":
        return "CNY"
    if pattern.startswith("^[0-9]"):
        return "42"
    text = str(BY_NAME.get(name, name.replace("_", "-") or "text"))
    low = schema.get("minLength", 0)
    return text.ljust(low, "x")[: schema.get("maxLength", len(text) + low)]


def annotate(document: JSON) -> None:
    """Put an example on each operation's parameters, request body and success responses."""
    for operations in document["paths"].values():
        for operation in operations.values():
            _annotate_operation(operation, document)


def _annotate_operation(operation: JSON, document: JSON) -> None:
    for parameter in operation.get("parameters", []):
        if parameter["name"] == "Idempotency-Key":
            parameter["example"] = "7c0e5d0a-2b1f-4c3e-9a55-0f6a1d2e3b4c"
        elif "example" not in parameter:
            parameter["example"] = build(parameter["schema"], document, parameter["name"])
    for media in operation.get("requestBody", {}).get("content", {}).values():
        media["example"] = build(media["schema"], document)
    for status, response in operation["responses"].items():
        if not status.startswith("2"):
            continue
        for media_type, media in response.get("content", {}).items():
            if media_type == "text/event-stream":
                media["example"] = _STREAM
            elif "schema" in media:
                media["example"] = build(media["schema"], document)


_STREAM = 'event: balance\ndata: {"available": 5200, "pending": 100, "held": 0}\n\n: keep-alive\n\n'
