"""The rules service (see services/rules/server.py)."""
