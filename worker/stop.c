/* stop.c — why a job stops, and what its report then says (stop.h). */
#include "worker/stop.h"

enum kf__stop kf__stop_merge(enum kf__stop cur, enum kf__stop why)
{
	if (why == KF__STOP_NONE || cur == KF__STOP_DROP)
		return cur;
	if (cur == KF__STOP_NONE || why == KF__STOP_DROP)
		return why;
	if (cur == KF__STOP_HANDBACK && why == KF__STOP_KILL)
		return why;
	return cur;
}

enum kf__settle kf__stop_settle(enum kf__stop stop, enum kf_err err)
{
	if (stop == KF__STOP_DROP)
		return KF__SETTLE_DROPPED;
	if (stop == KF__STOP_HANDBACK && err != KF_OK)
		return KF__SETTLE_RELEASED;
	if (stop == KF__STOP_EXPIRE && err == KF_ECANCELED)
		return KF__SETTLE_EXPIRED;
	if (stop == KF__STOP_KILL || err == KF_ECANCELED)
		return KF__SETTLE_KILLED;
	return err == KF_OK ? KF__SETTLE_SUCCEEDED : KF__SETTLE_FAILED;
}

void kf__early_note(struct kf__early_cancels *m, uint64_t job_id, uint64_t lease_token,
	bool drop, uint64_t now_ns)
{
	size_t i = m->next;

	if (!job_id || !lease_token)
		return; /* without its attempt it could stop a later one */
	m->e[i].job_id = job_id;
	m->e[i].lease_token = lease_token;
	m->e[i].at_ns = now_ns;
	m->e[i].drop = drop;
	m->next = (i + 1) % KF__EARLY_CANCELS;
}

enum kf__stop kf__early_take(struct kf__early_cancels *m, uint64_t job_id, uint64_t lease_token,
	uint64_t now_ns)
{
	enum kf__stop why = KF__STOP_NONE;

	for (size_t i = 0; i < KF__EARLY_CANCELS; i++) {
		if (!m->e[i].job_id || m->e[i].job_id != job_id ||
		    m->e[i].lease_token != lease_token)
			continue;
		if (now_ns - m->e[i].at_ns < KF__EARLY_CANCEL_NS)
			why = kf__stop_merge(why, m->e[i].drop ? KF__STOP_DROP : KF__STOP_KILL);
		m->e[i].job_id = 0;
	}
	return why;
}
