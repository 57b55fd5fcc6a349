"""The mall service (see services/mall/server.py)."""
