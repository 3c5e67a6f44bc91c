-- 011_killed_hand_back.sql — a hand-back of a job the operator killed ends
-- it as killed instead of queueing it again.
--
-- A worker that shuts down with --on-term handback, or a broker that gives
-- back a job it claimed for a request that failed, reports the attempt as
-- 'released': pending again at once, no attempt charged. Until now that was
-- so even when a kill had been asked for meanwhile (cancel_requested): the
-- release cleared the request and the killed job ran again on another
-- worker, against DESIGN.md §3 ("a killed job is never retried
-- automatically"). Every other way out of running already honours the
-- request (a failed report, an expired one, the requeue of a dead worker's
-- job). Now a release with the kill requested ends the job as killed, is
-- counted as such, and does not add the attempt back to the budget (a later
-- operator retry grants its own). Apart from that the function is 008's.

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
	WHEN 'released' THEN
		new_state := CASE WHEN j.cancel_requested THEN 'killed' ELSE 'pending' END;
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
	       attempt_limit = attempt_limit + CASE WHEN new_state = 'pending' THEN 1 ELSE 0 END,
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
