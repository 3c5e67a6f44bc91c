-- 009_report_statement.sql — a worker's report is one statement of the
-- broker's; kf_job_complete goes.
--
-- The report is the busiest transition: every job makes one. As a PL/pgSQL
-- function it ran four statements (the row's lock, the job's update, the
-- attempt's row, the final count), and each paid an executor start inside
-- the function's own call: its tables and indexes locked and opened, its
-- plan's state built. At 1,000 jobs/s
-- that took 190 µs of the broker's one database connection per job; the
-- same transitions as one statement with data-modifying CTEs, which the
-- broker prepares once per connection, took about 130
-- (docs/performance.md, "The report in one statement"). The statement is
-- REPORT_SQL in broker/store_ops.c; the transitions it makes are those of
-- 008's kf_job_complete, unchanged (docs/database.md, the state machine).
--
-- A broker older than this migration called the function; it refuses to
-- start on a database migrated past what it knows.

DROP FUNCTION kf_job_complete(bigint, bigint, text, jsonb, text, double precision,
                              bigint, bigint, double precision);
