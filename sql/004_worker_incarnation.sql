-- 004_worker_incarnation.sql — which process of a worker holds a running job.
--
-- A worker id outlives its processes: a worker restarted under the same
-- --id is a new process (a new incarnation) that holds none of the old
-- one's jobs. The broker that sees the restart requeues them, but only if
-- it knew the old incarnation: a broker that was itself restarted in the
-- meantime meets only the new one, whose id is alive, so the old process's
-- running jobs were neither requeued (the id is not dead) nor orphans (the
-- id is seen) and stayed running for ever (found by a chaos run on
-- 2026-11-29: a worker killed 68 ms after its claim and restarted, the
-- broker killed and restarted 1.6 s later).
--
-- A claim now records the claiming process's incarnation, and a worker's
-- hello requeues the running jobs of its id claimed by another one. Jobs
-- claimed before this migration have none (NULL) and are left to the old
-- rules: a hello must not requeue the jobs its own process is running.
ALTER TABLE jobs ADD COLUMN worker_incarnation bigint;

-- The running jobs of p_worker end with outcome "lost", like a dead
-- worker's: all of them, or (p_incarnation given) those claimed by a
-- process of it other than p_incarnation. What kf_worker_requeue did
-- alone, shared now with kf_worker_requeue_others.
CREATE FUNCTION kf__requeue_running(p_worker text, p_incarnation bigint, p_reason text)
RETURNS TABLE (job_id bigint, new_state text, attempt integer, lease_token bigint)
LANGUAGE plpgsql AS $$
DECLARE
	j jobs%ROWTYPE;
BEGIN
	FOR j IN SELECT * FROM jobs AS x
	          WHERE x.state = 'running' AND x.worker_id = p_worker
	            AND (p_incarnation IS NULL OR (x.worker_incarnation IS NOT NULL
	                                           AND x.worker_incarnation <> p_incarnation))
	          ORDER BY x.id FOR UPDATE LOOP
		job_id := j.id;
		attempt := j.attempt;
		lease_token := j.lease_token;
		new_state := kf__job_end_attempt(j, 'lost', p_reason);
		RETURN NEXT;
	END LOOP;
END
$$;

-- The jobs of a dead worker (as in 001, through the shared loop).
CREATE OR REPLACE FUNCTION kf_worker_requeue(p_worker text, p_reason text)
RETURNS TABLE (job_id bigint, new_state text, attempt integer, lease_token bigint)
LANGUAGE plpgsql AS $$
BEGIN
	RETURN QUERY SELECT * FROM kf__requeue_running(p_worker, NULL, p_reason);
	UPDATE workers SET state = 'dead' WHERE id = p_worker;
END
$$;

-- The running jobs of p_worker claimed by a process other than
-- p_incarnation. The worker row is left alone: the worker lives.
CREATE FUNCTION kf_worker_requeue_others(p_worker text, p_incarnation bigint, p_reason text)
RETURNS TABLE (job_id bigint, new_state text, attempt integer, lease_token bigint)
LANGUAGE sql AS $$
	SELECT * FROM kf__requeue_running(p_worker, p_incarnation, p_reason)
$$;
