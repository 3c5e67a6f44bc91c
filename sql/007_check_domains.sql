-- 007_check_domains.sql — the CHECK constraints of the tables every job
-- writes become domains.
--
-- PostgreSQL 15 parses a table's CHECK constraints again for every
-- statement that writes the table, and a job writes jobs three times
-- (submit, claim, report), job_attempts and job_final_counts once each: at
-- 1,000 jobs a second that was 10 % of the database backend's CPU
-- (ExecConstraints, nearly all of it stringToNode), and that backend, one
-- connection serving every request in turn, is the hive's busiest single
-- thread. A domain's constraint is parsed once per backend and cached with
-- the type, so the same rules cost a few instructions per row instead
-- (docs/performance.md, "Inside PostgreSQL's backend"). The values allowed
-- do not change. `workers` keeps its CHECK: it is written once a second.
--
-- Each column first becomes a domain without a constraint (binary
-- compatible: no table rewrite), then the constraint is added to the
-- domain and validated, a scan of the table; a rewrite of a large history
-- could outlast the broker's --db-timeout. The final-count triggers name
-- jobs.state in their WHEN clauses, and a column used there cannot change
-- type: they are dropped and created again, unchanged, in this transaction.

DROP TRIGGER jobs_final_count_insert ON jobs;
DROP TRIGGER jobs_final_count_update ON jobs;
DROP TRIGGER jobs_final_count_delete ON jobs;

CREATE DOMAIN kf_job_state AS text;
CREATE DOMAIN kf_attempt_outcome AS text;
CREATE DOMAIN kf_final_state AS text;
CREATE DOMAIN kf_attempts AS integer;    -- max_attempts
CREATE DOMAIN kf_duration_ms AS bigint;  -- deadline_ms
CREATE DOMAIN kf_count AS bigint;        -- job_final_counts.n

ALTER TABLE jobs
	DROP CONSTRAINT jobs_state_check,
	DROP CONSTRAINT jobs_max_attempts_check,
	DROP CONSTRAINT jobs_deadline_ms_check,
	ALTER COLUMN state TYPE kf_job_state,
	ALTER COLUMN max_attempts TYPE kf_attempts,
	ALTER COLUMN deadline_ms TYPE kf_duration_ms;
ALTER TABLE job_attempts
	DROP CONSTRAINT job_attempts_outcome_check,
	ALTER COLUMN outcome TYPE kf_attempt_outcome;
ALTER TABLE job_final_counts
	DROP CONSTRAINT job_final_counts_state_check,
	DROP CONSTRAINT job_final_counts_n_check,
	ALTER COLUMN state TYPE kf_final_state,
	ALTER COLUMN n TYPE kf_count;

ALTER DOMAIN kf_job_state ADD CONSTRAINT kf_job_state_check
	CHECK (VALUE IN ('pending', 'running', 'retrying', 'succeeded', 'failed', 'killed'))
	NOT VALID;
ALTER DOMAIN kf_attempt_outcome ADD CONSTRAINT kf_attempt_outcome_check
	CHECK (VALUE IN ('succeeded', 'failed', 'killed', 'released', 'lost', 'expired'))
	NOT VALID;
ALTER DOMAIN kf_final_state ADD CONSTRAINT kf_final_state_check
	CHECK (VALUE IN ('succeeded', 'failed', 'killed')) NOT VALID;
ALTER DOMAIN kf_attempts ADD CONSTRAINT kf_attempts_check CHECK (VALUE >= 1) NOT VALID;
ALTER DOMAIN kf_duration_ms ADD CONSTRAINT kf_duration_ms_check CHECK (VALUE > 0) NOT VALID;
ALTER DOMAIN kf_count ADD CONSTRAINT kf_count_check CHECK (VALUE >= 0) NOT VALID;
ALTER DOMAIN kf_job_state VALIDATE CONSTRAINT kf_job_state_check;
ALTER DOMAIN kf_attempt_outcome VALIDATE CONSTRAINT kf_attempt_outcome_check;
ALTER DOMAIN kf_final_state VALIDATE CONSTRAINT kf_final_state_check;
ALTER DOMAIN kf_attempts VALIDATE CONSTRAINT kf_attempts_check;
ALTER DOMAIN kf_duration_ms VALIDATE CONSTRAINT kf_duration_ms_check;
ALTER DOMAIN kf_count VALIDATE CONSTRAINT kf_count_check;

-- As in 002_final_counts.sql.
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
