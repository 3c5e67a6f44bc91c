-- 010_analyze_sample.sql — ANALYZE jobs reads a sample of 3,000 rows, not
-- 30,000.
--
-- ANALYZE samples 300 rows per unit of the largest statistics target among
-- a table's columns: 30,000 rows at PostgreSQL's default of 100. Autovacuum
-- analyzes jobs every few seconds under load (a queue: a tenth of its rows
-- change in seconds), so after 003 dropped the wide columns the pass still
-- read up to 30,000 rows and built 100-entry histograms for the rest. While
-- it runs it takes a core from the hive, and its snapshot holds back the
-- cleanup of the claim index. The queries of the hive need little from the
-- statistics: every hot path goes through an index, and the rest filter on
-- state (six values), which ten most-common values describe completely.
-- Measured with bench/hive/analyze_cost.sh (docs/database.md).
ALTER TABLE jobs
	ALTER COLUMN id SET STATISTICS 10,
	ALTER COLUMN state SET STATISTICS 10,
	ALTER COLUMN priority SET STATISTICS 10,
	ALTER COLUMN attempt SET STATISTICS 10,
	ALTER COLUMN max_attempts SET STATISTICS 10,
	ALTER COLUMN attempt_limit SET STATISTICS 10,
	ALTER COLUMN worker_id SET STATISTICS 10,
	ALTER COLUMN worker_incarnation SET STATISTICS 10,
	ALTER COLUMN lease_token SET STATISTICS 10,
	ALTER COLUMN cancel_requested SET STATISTICS 10,
	ALTER COLUMN deadline_ms SET STATISTICS 10,
	ALTER COLUMN deadline_at SET STATISTICS 10,
	ALTER COLUMN next_attempt_at SET STATISTICS 10,
	ALTER COLUMN progress SET STATISTICS 10,
	ALTER COLUMN best_cost SET STATISTICS 10,
	ALTER COLUMN created_at SET STATISTICS 10,
	ALTER COLUMN started_at SET STATISTICS 10,
	ALTER COLUMN finished_at SET STATISTICS 10;
