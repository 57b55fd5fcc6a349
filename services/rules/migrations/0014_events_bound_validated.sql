-- Events by month, step 3 of 4: the bound checked over existing rows, under a lock that lets
-- writes go on, so step 4 attaches the table without scanning it.
ALTER TABLE events VALIDATE CONSTRAINT events_before_months;
