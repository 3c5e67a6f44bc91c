-- 008_final_counts_in_functions.sql — the state machine keeps the final
-- counts itself; the INSERT and UPDATE triggers of 002 go.
--
-- Every job passed through those two triggers: the UPDATE trigger's WHEN
-- clause is built again for every statement that changes a job's state (a
-- claim, a report), and a report that ends a job queued an AFTER event
-- that called a PL/pgSQL function to run one UPDATE. Measured with
-- pg_stat_statements at 1,000 jobs/s (docs/performance.md, "The final
-- counts without triggers"): the report's UPDATE of jobs took 113 µs with
-- the trigger and 54 µs without, and the submit's INSERT 68 µs with the
-- INSERT trigger's WHEN clause and 51 µs without, on the one connection
-- whose transactions every job waits for. The same counter UPDATE, written
-- in the functions that make the transition, costs what the statement
-- itself costs (13 µs).
--
-- Every transition into or out of a final state is made by one of the
-- four functions below (the broker's own statements only claim, submit
-- pending jobs and promote retrying ones), so each adds or takes away the
-- count where it writes the state. The DELETE and TRUNCATE triggers stay:
-- deleting history is an operator's task, done in SQL. What bypasses the
-- functions — an UPDATE of jobs.state or an INSERT of a finished job by
-- hand — leaves the counts behind until kf_job_final_recount() is run
-- (docs/database.md). Apart from the counter updates, each function is
-- the latest version of itself (001, 006).

DROP TRIGGER jobs_final_count_insert ON jobs;
DROP TRIGGER jobs_final_count_update ON jobs;

CREATE OR REPLACE FUNCTION kf_job_complete(p_id bigint, p_token bigint, p_outcome text,
                                p_result jsonb, p_error text, p_best_cost double precision,
                                p_backoff_base_ms bigint, p_backoff_max_ms bigint,
                                p_jitter double precision,
                                OUT rc integer, OUT new_state text, OUT attempt integer,
                                OUT next_attempt_ms bigint)
LANGUAGE plpgsql AS $$
DECLARE
	j jobs%ROWTYPE;
	v_now timestamptz := clock_timestamp();
	v_next timestamptz;
	v_error text := p_error;
BEGIN
	SELECT * INTO j FROM jobs WHERE id = p_id FOR UPDATE;
	IF NOT FOUND THEN
		rc := 1;
		RETURN;
	END IF;
	attempt := j.attempt;
	new_state := j.state;
	IF j.state <> 'running' OR j.lease_token IS DISTINCT FROM p_token THEN
		rc := CASE WHEN j.state <> 'running' AND j.lease_token = p_token THEN 3 ELSE 2 END;
		RETURN;
	END IF;

	CASE p_outcome
	WHEN 'succeeded' THEN new_state := 'succeeded';
	WHEN 'killed' THEN new_state := 'killed';
	WHEN 'released' THEN new_state := 'pending';
	WHEN 'expired' THEN
		new_state := CASE WHEN j.cancel_requested THEN 'killed' ELSE 'failed' END;
		v_error := COALESCE(p_error, 'deadline exceeded');
	WHEN 'failed' THEN
		IF j.cancel_requested THEN
			new_state := 'killed';           -- asked to stop: never retried
		ELSIF j.attempt < j.attempt_limit THEN
			new_state := 'retrying';
			next_attempt_ms := kf_backoff_ms(j.attempt, p_backoff_base_ms,
			                                 p_backoff_max_ms, p_jitter);
			v_next := v_now + next_attempt_ms * interval '1 millisecond';
		ELSE
			new_state := 'failed';
		END IF;
	ELSE
		RAISE EXCEPTION 'kf_job_complete: unknown outcome "%"', p_outcome
			USING ERRCODE = 'invalid_parameter_value';
	END CASE;

	UPDATE jobs
	   SET state = new_state,
	       result = COALESCE(p_result, result),
	       error = COALESCE(v_error, error),
	       best_cost = COALESCE(p_best_cost, best_cost),
	       next_attempt_at = v_next,
	       finished_at = CASE WHEN new_state IN ('succeeded', 'failed', 'killed')
	                          THEN v_now END,
	       attempt_limit = attempt_limit + CASE WHEN p_outcome = 'released' THEN 1 ELSE 0 END,
	       cancel_requested = false,
	       deadline_at = NULL
	 WHERE id = p_id;
	INSERT INTO job_attempts (job_id, attempt, worker_id, outcome, message, started_at, finished_at)
	VALUES (p_id, j.attempt, j.worker_id, p_outcome, v_error, j.started_at, v_now);
	IF new_state IN ('succeeded', 'failed', 'killed') THEN  -- from running
		UPDATE job_final_counts SET n = n + 1 WHERE state = new_state;
	END IF;
	rc := 0;
END
$$;

CREATE OR REPLACE FUNCTION kf_job_kill(p_id bigint, p_reason text,
                            OUT rc integer, OUT new_state text, OUT worker_id text,
                            OUT lease_token bigint)
LANGUAGE plpgsql AS $$
DECLARE
	j jobs%ROWTYPE;
BEGIN
	SELECT * INTO j FROM jobs WHERE id = p_id FOR UPDATE;
	IF NOT FOUND THEN
		rc := 1;
		RETURN;
	END IF;
	new_state := j.state;
	worker_id := j.worker_id;
	lease_token := j.lease_token;
	rc := 0;
	IF j.state IN ('pending', 'retrying') THEN
		new_state := 'killed';
		UPDATE jobs SET state = 'killed', finished_at = clock_timestamp(),
		                next_attempt_at = NULL, error = COALESCE(p_reason, error)
		 WHERE id = p_id;
		UPDATE job_final_counts SET n = n + 1 WHERE state = 'killed';
	ELSIF j.state = 'running' THEN
		UPDATE jobs SET cancel_requested = true WHERE id = p_id;
	ELSIF j.state <> 'killed' THEN
		rc := 4;
	END IF;
END
$$;

CREATE OR REPLACE FUNCTION kf_job_retry(p_id bigint, OUT rc integer, OUT new_state text)
LANGUAGE plpgsql AS $$
DECLARE
	j jobs%ROWTYPE;
BEGIN
	SELECT * INTO j FROM jobs WHERE id = p_id FOR UPDATE;
	IF NOT FOUND THEN
		rc := 1;
		RETURN;
	END IF;
	new_state := j.state;
	IF j.state NOT IN ('failed', 'killed') THEN
		rc := 4;
		RETURN;
	END IF;
	UPDATE jobs SET state = 'pending', attempt_limit = j.attempt + j.max_attempts,
	                lease_token = NULL, cancel_requested = false, next_attempt_at = NULL,
	                finished_at = NULL, deadline_at = NULL, progress = 0
	 WHERE id = p_id;
	UPDATE job_final_counts SET n = n - 1 WHERE state = j.state;
	new_state := 'pending';
	rc := 0;
END
$$;

CREATE OR REPLACE FUNCTION kf__job_end_attempt(j jobs, p_outcome text, p_reason text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	v_state text;
	v_now timestamptz := clock_timestamp();
BEGIN
	IF j.cancel_requested THEN
		v_state := 'killed';
	ELSIF p_outcome = 'lost' AND j.attempt < j.attempt_limit THEN
		v_state := 'pending';
	ELSE
		v_state := 'failed';
	END IF;
	UPDATE jobs SET state = v_state, lease_token = NULL, cancel_requested = false,
	                deadline_at = NULL, error = p_reason,
	                finished_at = CASE WHEN v_state = 'pending' THEN NULL ELSE v_now END
	 WHERE id = j.id;
	INSERT INTO job_attempts (job_id, attempt, worker_id, outcome, message, started_at, finished_at)
	VALUES (j.id, j.attempt, j.worker_id, p_outcome, p_reason, j.started_at, v_now);
	IF v_state <> 'pending' THEN  -- killed or failed, from running
		UPDATE job_final_counts SET n = n + 1 WHERE state = v_state;
	END IF;
	RETURN v_state;
END
$$;

-- The counts from a scan of jobs: after a change by hand that the
-- functions above did not make. The lock waits for the transactions that
-- have moved a count and not yet committed, and holds off new ones, so
-- that the scan sees every change the counts saw and none is lost.
CREATE FUNCTION kf_job_final_recount() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	LOCK TABLE job_final_counts IN EXCLUSIVE MODE;
	UPDATE job_final_counts c
	   SET n = (SELECT count(*) FROM jobs WHERE jobs.state = c.state);
END
$$;
