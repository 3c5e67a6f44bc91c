-- 001_initial: jobs, their attempts, workers, and the job state machine.
--
-- Append-only: once this file has been applied anywhere, never edit it (its
-- SHA-256 is recorded in schema_migrations and a mismatch stops the broker).
-- Change the schema with a new file, sql/NNN_name.sql. docs/database.md has
-- the rules and the state machine.

-- Workers as the broker last saw them. The id is the worker's own (its bus
-- sender id); incarnation changes each time the process restarts.
CREATE TABLE workers (
	id          text PRIMARY KEY,
	host        text NOT NULL DEFAULT '',
	pid         integer NOT NULL DEFAULT 0,
	incarnation bigint NOT NULL DEFAULT 0,
	slots       integer NOT NULL DEFAULT 1,
	state       text NOT NULL DEFAULT 'alive'
	            CHECK (state IN ('alive', 'stale', 'dead', 'gone')),
	first_seen  timestamptz NOT NULL DEFAULT clock_timestamp(),
	last_seen   timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE jobs (
	id               bigserial PRIMARY KEY,
	state            text NOT NULL DEFAULT 'pending'
	                 CHECK (state IN ('pending', 'running', 'retrying',
	                                  'succeeded', 'failed', 'killed')),
	priority         integer NOT NULL DEFAULT 0,      -- higher runs first
	attempt          integer NOT NULL DEFAULT 0,      -- claims so far (the running one included)
	max_attempts     integer NOT NULL CHECK (max_attempts >= 1),
	-- Highest attempt number that may still be started automatically:
	-- max_attempts at submit, attempt + max_attempts after an operator retry
	-- (a retry grants a fresh budget), +1 for every attempt a worker handed back.
	attempt_limit    integer NOT NULL,
	worker_id        text,                            -- current or last worker
	-- Fences every report of an attempt. Fresh random value at each claim;
	-- kept after the holder's own final report (so its resend is recognised),
	-- cleared when someone else ends the attempt (requeue, deadline, retry).
	lease_token      bigint,
	cancel_requested boolean NOT NULL DEFAULT false,
	deadline_ms      bigint CHECK (deadline_ms > 0),  -- run-time limit per attempt
	deadline_at      timestamptz,                     -- started_at + deadline_ms
	next_attempt_at  timestamptz,                     -- retrying: end of the backoff
	progress         double precision NOT NULL DEFAULT 0,  -- 0..1, last report
	best_cost        double precision,                -- best cost reported, NULL = none
	created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
	started_at       timestamptz,                     -- of the current/last attempt
	finished_at      timestamptz,                     -- set in a final state only
	submit_key       text UNIQUE,                     -- client request id: idempotent submit
	params           jsonb NOT NULL,
	result           jsonb,
	error            text                             -- last error message
);

-- The claim path: the best pending job, oldest first within a priority.
-- Partial, so it holds only the queue, not the history.
CREATE INDEX jobs_claim ON jobs (priority DESC, id) WHERE state = 'pending';
-- Promotion of retrying jobs whose backoff elapsed.
CREATE INDEX jobs_retrying ON jobs (next_attempt_at) WHERE state = 'retrying';
-- Requeue of a dead worker's jobs; deadline expiry.
CREATE INDEX jobs_running_worker ON jobs (worker_id) WHERE state = 'running';
CREATE INDEX jobs_running_deadline ON jobs (deadline_at)
	WHERE state = 'running' AND deadline_at IS NOT NULL;
-- Listing by state with keyset paging, and counts per state.
CREATE INDEX jobs_state_id ON jobs (state, id);

-- One row per ended attempt: the error history of a job.
CREATE TABLE job_attempts (
	job_id      bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	attempt     integer NOT NULL,
	worker_id   text,
	outcome     text NOT NULL
	            CHECK (outcome IN ('succeeded', 'failed', 'killed', 'released',
	                               'lost', 'expired')),
	message     text,
	started_at  timestamptz,
	finished_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	PRIMARY KEY (job_id, attempt)
);

-- ---------------------------------------------------------------------------
-- The state machine. Each function locks the job row, checks the transition,
-- writes the new state and the attempt history, and answers with a code:
--   0 ok, 1 no such job, 2 stale lease, 3 duplicate report (already
--   recorded with this lease token), 4 not valid in the job's state.
-- The broker (broker/store.c) maps them to enum kf_err.
-- ---------------------------------------------------------------------------

-- Backoff before attempt n+1 after attempt n failed: base * 2^(n-1), capped,
-- times a jitter factor in [0.5, 1) ("equal jitter") so that jobs failing
-- together do not come back together.
CREATE FUNCTION kf_backoff_ms(p_attempt integer, p_base_ms bigint, p_max_ms bigint,
                              p_jitter double precision)
RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
	SELECT (LEAST(p_max_ms::double precision,
	              p_base_ms * power(2::double precision, LEAST(GREATEST(p_attempt - 1, 0), 40)))
	        * (0.5 + 0.5 * LEAST(GREATEST(p_jitter, 0), 1)))::bigint
$$;

-- A running job reports progress: ok (and whether to stop), stale, or unknown.
CREATE FUNCTION kf_job_progress(p_id bigint, p_token bigint,
                                p_progress double precision, p_best_cost double precision,
                                OUT rc integer, OUT cancel boolean)
LANGUAGE plpgsql AS $$
BEGIN
	UPDATE jobs SET progress = COALESCE(p_progress, progress),
	                best_cost = COALESCE(p_best_cost, best_cost)
	 WHERE id = p_id AND state = 'running' AND lease_token = p_token
	RETURNING 0, cancel_requested INTO rc, cancel;
	IF FOUND THEN
		RETURN;
	END IF;
	cancel := false;
	rc := CASE WHEN EXISTS (SELECT 1 FROM jobs WHERE id = p_id) THEN 2 ELSE 1 END;
END
$$;

-- The holder of a lease reports the end of its attempt.
-- p_outcome: 'succeeded', 'failed', 'killed' or 'released' (handed back
-- unfinished, e.g. the worker is shutting down: pending again, the attempt
-- does not count against the budget).
CREATE FUNCTION kf_job_complete(p_id bigint, p_token bigint, p_outcome text,
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
	       error = COALESCE(p_error, error),
	       best_cost = COALESCE(p_best_cost, best_cost),
	       next_attempt_at = v_next,
	       finished_at = CASE WHEN new_state IN ('succeeded', 'failed', 'killed')
	                          THEN v_now END,
	       attempt_limit = attempt_limit + CASE WHEN p_outcome = 'released' THEN 1 ELSE 0 END,
	       cancel_requested = false,
	       deadline_at = NULL
	 WHERE id = p_id;
	INSERT INTO job_attempts (job_id, attempt, worker_id, outcome, message, started_at, finished_at)
	VALUES (p_id, j.attempt, j.worker_id, p_outcome, p_error, j.started_at, v_now);
	rc := 0;
END
$$;

-- Operator kill. Pending or retrying: killed at once. Running: the cancel
-- flag is set; the job becomes killed when its worker reports (or dies).
-- Already killed: ok (idempotent). Succeeded or failed: code 4.
CREATE FUNCTION kf_job_kill(p_id bigint, p_reason text,
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
	ELSIF j.state = 'running' THEN
		UPDATE jobs SET cancel_requested = true WHERE id = p_id;
	ELSIF j.state <> 'killed' THEN
		rc := 4;
	END IF;
END
$$;

-- Operator retry of a failed or killed job: pending again with a fresh
-- attempt budget. Any other state: code 4.
CREATE FUNCTION kf_job_retry(p_id bigint, OUT rc integer, OUT new_state text)
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
	new_state := 'pending';
	rc := 0;
END
$$;

-- Ends the attempt of a running job that its holder will not report:
-- the worker died ('lost') or the deadline passed ('expired'). A job asked
-- to stop becomes killed; a lost job is requeued at once while its budget
-- lasts, else failed; an expired job is failed (running it again would most
-- likely exceed the deadline again). The lease token is cleared, so a late
-- report of the old holder is stale.
CREATE FUNCTION kf__job_end_attempt(j jobs, p_outcome text, p_reason text)
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
	RETURN v_state;
END
$$;

-- The jobs of a dead worker.
CREATE FUNCTION kf_worker_requeue(p_worker text, p_reason text)
RETURNS TABLE (job_id bigint, new_state text, attempt integer, lease_token bigint)
LANGUAGE plpgsql AS $$
DECLARE
	j jobs%ROWTYPE;
BEGIN
	FOR j IN SELECT * FROM jobs WHERE state = 'running' AND worker_id = p_worker
	         ORDER BY id FOR UPDATE LOOP
		job_id := j.id;
		attempt := j.attempt;
		lease_token := j.lease_token;
		new_state := kf__job_end_attempt(j, 'lost', p_reason);
		RETURN NEXT;
	END LOOP;
	UPDATE workers SET state = 'dead' WHERE id = p_worker;
END
$$;

-- Running jobs past their deadline (plus a grace the broker chooses, so that
-- a worker which stops by itself at its deadline wins the race).
CREATE FUNCTION kf_jobs_expire(p_grace_ms bigint)
RETURNS TABLE (job_id bigint, new_state text, attempt integer, worker_id text,
               lease_token bigint)
LANGUAGE plpgsql AS $$
DECLARE
	j jobs%ROWTYPE;
BEGIN
	FOR j IN SELECT * FROM jobs AS x
	          WHERE x.state = 'running' AND x.deadline_at IS NOT NULL
	            AND x.deadline_at + p_grace_ms * interval '1 millisecond' <= clock_timestamp()
	          ORDER BY x.id FOR UPDATE SKIP LOCKED LOOP
		job_id := j.id;
		attempt := j.attempt;
		worker_id := j.worker_id;
		lease_token := j.lease_token;
		new_state := kf__job_end_attempt(j, 'expired', 'deadline exceeded');
		RETURN NEXT;
	END LOOP;
END
$$;
