-- 003_analyze_costs.sql — no planner statistics for the wide columns of jobs.
--
-- A queue table changes all the time, so autovacuum analyzes jobs often (a
-- tenth of its rows changed: every few seconds under load), and ANALYZE
-- builds statistics for every column of a 30,000-row sample. For the JSON
-- documents (params, result) and the free texts (error, submit_key) that
-- is most of its work, sorting and comparing wide values with the
-- collation, and no query needs the result: nothing filters on params,
-- result or error, and submit_key is only looked up by equality through its
-- unique index, which the planner knows returns one row. With 20,000 jobs
-- here, ANALYZE jobs took 648–668 ms with these statistics and 216–237 ms
-- without (2026-11-29, docs/database.md); while it runs it takes one of the
-- machine's two cores from the hive, and the submit→running tail showed it.
ALTER TABLE jobs
	ALTER COLUMN params SET STATISTICS 0,
	ALTER COLUMN result SET STATISTICS 0,
	ALTER COLUMN error SET STATISTICS 0,
	ALTER COLUMN submit_key SET STATISTICS 0;
