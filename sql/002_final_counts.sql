-- 002_final_counts.sql — jobs per final state, kept by triggers.
--
-- The broker counts jobs per state once a second (the keyforge_jobs_active
-- gauge, the per-state gauges, the cluster view). A GROUP BY over jobs reads
-- every job ever run: 30–80 ms for 100,000 jobs on the development machine,
-- on the one connection whose transactions every submit, lease and report
-- wait for. Final states are where jobs pile up, so their counts are kept
-- here instead, in the same transactions that change them; the census reads
-- three rows. Active states (pending, running, retrying) are still counted
-- through their partial indexes: few rows, and keeping them here too would
-- add a counter update to every claim and report.
CREATE TABLE job_final_counts (
	state text PRIMARY KEY CHECK (state IN ('succeeded', 'failed', 'killed')),
	n     bigint NOT NULL CHECK (n >= 0)
);

INSERT INTO job_final_counts (state, n)
SELECT s, (SELECT count(*) FROM jobs WHERE jobs.state = s)
  FROM unnest(ARRAY['succeeded', 'failed', 'killed']) AS s;

CREATE FUNCTION kf_job_final_count() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP <> 'INSERT' AND OLD.state IN ('succeeded', 'failed', 'killed') THEN
		UPDATE job_final_counts SET n = n - 1 WHERE state = OLD.state;
	END IF;
	IF TG_OP <> 'DELETE' AND NEW.state IN ('succeeded', 'failed', 'killed') THEN
		UPDATE job_final_counts SET n = n + 1 WHERE state = NEW.state;
	END IF;
	RETURN NULL;
END
$$;

-- The WHEN clauses run without calling the function, so a claim or a
-- progress report (no final state on either side) costs no trigger call.
CREATE TRIGGER jobs_final_count_insert AFTER INSERT ON jobs FOR EACH ROW
	WHEN (NEW.state IN ('succeeded', 'failed', 'killed'))
	EXECUTE FUNCTION kf_job_final_count();
CREATE TRIGGER jobs_final_count_update AFTER UPDATE OF state ON jobs FOR EACH ROW
	WHEN (OLD.state IS DISTINCT FROM NEW.state AND
	      (OLD.state IN ('succeeded', 'failed', 'killed') OR
	       NEW.state IN ('succeeded', 'failed', 'killed')))
	EXECUTE FUNCTION kf_job_final_count();
CREATE TRIGGER jobs_final_count_delete AFTER DELETE ON jobs FOR EACH ROW
	WHEN (OLD.state IN ('succeeded', 'failed', 'killed'))
	EXECUTE FUNCTION kf_job_final_count();
-- TRUNCATE would bypass the row triggers: reset the counts with it.
CREATE FUNCTION kf_job_final_count_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	UPDATE job_final_counts SET n = 0;
	RETURN NULL;
END
$$;
CREATE TRIGGER jobs_final_count_truncate AFTER TRUNCATE ON jobs FOR EACH STATEMENT
	EXECUTE FUNCTION kf_job_final_count_truncate();
