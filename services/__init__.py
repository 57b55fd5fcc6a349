"""Points services: ledger, rules, mall, and the chassis they share (``services.common``)."""
