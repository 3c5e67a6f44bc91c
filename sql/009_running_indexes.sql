-- 009_running_indexes.sql — the running jobs are found through
-- jobs_state_id; the two partial indexes over them go.
--
-- jobs_running_worker (worker_id) and jobs_running_deadline (deadline_at)
-- held only the running jobs, for the dead-worker requeue, the deadline
-- sweep and the orphan and lost-lease checks. But every INSERT and UPDATE
-- of jobs opens each of the table's indexes and tests each partial
-- index's predicate, and every claim, which makes a job running, writes
-- an entry into the first (and into the second when the job has a
-- deadline). jobs_state_id (state, id) already finds the running
-- jobs, in id order, and they are never more than the hive's slots: the
-- sweeps filter a few hundred rows instead of reading a narrower index.
-- Measured with stmt_probe.sh at 1,000 jobs/s (docs/performance.md, "Two
-- indexes fewer"): a claim took 25-28 µs without them against 28-37, and
-- the statements of 8,000 jobs 2.32-2.42 s against 2.47-2.79.
DROP INDEX jobs_running_worker;
DROP INDEX jobs_running_deadline;
