"""The webhooks service: events from every service's outbox, delivered to subscribed
endpoints (Standard Webhooks signatures, at least once, in order per member)."""
