-- 005_lost_leases.sql — a claim whose lease never reached its worker.
--
-- A claim commits before its reply leaves the broker. A broker that dies
-- in between (SIGKILL, a crash, the machine) leaves the job running under
-- a worker that never heard of it; the worker asks again and gets another
-- job. Its id and process are alive, so the job was neither a dead
-- worker's, nor an orphan, nor another incarnation's: it stayed running for
-- ever. Since protocol 1.2 a worker's heartbeat lists every attempt it
-- holds; the broker ends, with outcome "lost", a job running for a while
-- under a process that has not listed it in two checks 5 s apart
-- (docs/database.md, docs/operations.md).

-- Ends the attempt p_token of job p_job as "lost" (requeued while its
-- budget lasts, else failed; killed if a cancel was requested), if it is
-- still that attempt and running. No row: nothing changed.
CREATE FUNCTION kf_job_lost(p_job bigint, p_token bigint, p_reason text)
RETURNS TABLE (job_id bigint, new_state text, attempt integer, worker_id text, lease_token bigint)
LANGUAGE plpgsql AS $$
DECLARE
	j jobs%ROWTYPE;
BEGIN
	SELECT * INTO j FROM jobs AS x
	 WHERE x.id = p_job AND x.state = 'running' AND x.lease_token = p_token
	   FOR UPDATE;
	IF NOT FOUND THEN
		RETURN;
	END IF;
	job_id := j.id;
	attempt := j.attempt;
	worker_id := j.worker_id;
	lease_token := j.lease_token;
	new_state := kf__job_end_attempt(j, 'lost', p_reason);
	RETURN NEXT;
END
$$;
