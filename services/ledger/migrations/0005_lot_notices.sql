-- When a lot's "expiring soon" and "pending points matured" events were written, so each is
-- written once per lot (see services/ledger/notices.py).
ALTER TABLE lots ADD COLUMN expiring_announced_at timestamptz;
ALTER TABLE lots ADD COLUMN maturity_announced_at timestamptz;
