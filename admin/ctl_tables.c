/*
 * ctl_tables.c — the workers and job list tables, without sockets: cells
 * for keyforgectl to print and for keyforge-admin to draw (the unit test
 * renders them from messages it builds).
 */
#include <string.h>

#include "admin/ctl.h"

/* ---- workers ----------------------------------------------------------------- */

void kf__ctl_workers_fill(const struct kf_msg_cluster_status *st, struct kf__ctl_table *t)
{
	static const char *const heads[] = {
		"WORKER", "HOST", ">PID", "LIVENESS", "STATE", ">CPU", ">HOST CPU", ">MEMORY",
		">SLOTS", ">JOB", ">PROGRESS", ">HEARTBEAT",
	};
	struct kf_strbuf sb = KF_STRBUF_INIT;

	kf__ctl_table_init(t, heads, sizeof heads / sizeof heads[0]);
	for (size_t i = 0; i < st->n_workers; i++) {
		const struct kf_msg_worker_status *w = &st->workers[i];

		kf__ctl_table_cell(t, "%s", w->worker_id);
		kf__ctl_table_cell(t, "%s", w->host ? w->host : "-");
		kf__ctl_table_cell(t, "%u", w->pid);
		kf__ctl_table_cell(t, "%s", kf_worker_liveness_name(w->liveness));
		if (w->liveness == KF_WORKER_DEAD) {
			for (int k = 0; k < 4; k++)  /* state, CPU, host CPU, memory */
				kf__ctl_table_cell(t, "-");
			kf__ctl_table_cell(t, "-/%u", w->slots_total);
		} else {
			kf__ctl_table_cell(t, "%s", kf_worker_state_name(w->state));
			kf__ctl_table_cell(t, "%.0f%%", 100.0 * w->cpu_process);
			kf__ctl_table_cell(t, "%.0f%%", 100.0 * w->cpu_host);
			kf_strbuf_reset(&sb);
			kf__ctl_add_bytes(&sb, w->rss_bytes);
			kf__ctl_table_cell(t, "%s", sb.buf);
			kf__ctl_table_cell(t, "%u/%u", w->slots_busy, w->slots_total);
		}
		if (w->job_id && w->liveness != KF_WORKER_DEAD) {
			kf__ctl_table_cell(t, "%llu", (unsigned long long)w->job_id);
			kf__ctl_table_cell(t, "%.0f%%", 100.0 * w->job_progress);
		} else {
			kf__ctl_table_cell(t, "-");
			kf__ctl_table_cell(t, "-");
		}
		kf_strbuf_reset(&sb);
		kf__ctl_add_duration(&sb, w->last_heartbeat_age_ms);
		/* An unheard worker's age is its hello's: say what is missing,
		 * the ingest path (it gets no job meanwhile). */
		if (w->unheard)
			kf__ctl_table_cell(t, "none since hello %s ago", sb.buf);
		else
			kf__ctl_table_cell(t, "%s ago", sb.buf);
	}
	kf_strbuf_release(&sb);
}

void kf__ctl_workers_table(const struct kf_msg_cluster_status *st, FILE *out)
{
	struct kf__ctl_table t;

	kf__ctl_workers_fill(st, &t);
	kf__ctl_table_print(&t, out);
	kf__ctl_table_release(&t);
}

/* ---- jobs -------------------------------------------------------------------------- */

static const char *base_name(const char *path)
{
	const char *slash = path ? strrchr(path, '/') : NULL;

	return slash ? slash + 1 : path ? path : "";
}

/* The time column: how long it waited, runs, or ran. */
static void add_when(struct kf_strbuf *sb, enum kf_job_state st, uint64_t created, uint64_t started,
	uint64_t finished)
{
	if (kf_job_state_final(st) && started && finished >= started)
		kf__ctl_add_duration(sb, (finished - started) / 1000000u);
	else if (st == KF_JOB_RUNNING && started)
		kf__ctl_add_duration(sb, kf__ctl_age_ms(started));
	else if (created)
		kf__ctl_add_duration(sb, kf__ctl_age_ms(kf_job_state_final(st) && finished ? finished :
							   created));
	else
		kf_strbuf_addch(sb, '-');
}

void kf__ctl_jobs_fill(const struct kf_msg_job_summary *jobs, size_t n, struct kf__ctl_table *t)
{
	static const char *const heads[] = {
		">ID", "STATE", ">ATTEMPT", ">PRI", "WORKER", ">PROGRESS", ">BEST", ">TIME",
		"CORPUS", "LAYOUT / ERROR",
	};
	struct kf_strbuf when = KF_STRBUF_INIT;

	kf__ctl_table_init(t, heads, sizeof heads / sizeof heads[0]);
	for (size_t i = 0; i < n; i++) {
		const struct kf_msg_job_summary *s = &jobs[i];

		kf_strbuf_reset(&when);
		add_when(&when, s->state, s->created_ns, s->started_ns, s->finished_ns);
		kf__ctl_table_cell(t, "%llu", (unsigned long long)s->id);
		kf__ctl_table_cell(t, "%s", kf_job_state_name(s->state));
		kf__ctl_table_cell(t, "%u/%u", s->attempt, s->max_attempts);
		kf__ctl_table_cell(t, "%d", (int)s->priority);
		kf__ctl_table_cell(t, "%s", s->worker_id ? s->worker_id : "-");
		/* the last progress report of a succeeded job may predate its end */
		if (s->state == KF_JOB_RUNNING)
			kf__ctl_table_cell(t, "%.0f%%", 100.0 * s->progress);
		else
			kf__ctl_table_cell(t, s->state == KF_JOB_SUCCEEDED ? "100%%" : "-");
		if (s->best_cost != 0)
			kf__ctl_table_cell(t, "%.3f", s->best_cost);
		else
			kf__ctl_table_cell(t, "-");
		kf__ctl_table_cell(t, "%s", when.buf);
		kf__ctl_table_cell(t, "%s", base_name(s->corpus));
		kf__ctl_table_cell(t, "%s", s->layout ? s->layout : s->last_error ?
				   s->last_error : "");
	}
	kf_strbuf_release(&when);
}
