"""The ledger service: the source of truth for points (see services/ledger/server.py)."""
