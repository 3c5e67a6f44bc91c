/*
 * ctl_workers_table.c — `keyforgectl workers`' table, without sockets (the
 * unit test renders it from a cluster status it builds).
 */
#include "admin/ctl.h"

void kf__ctl_workers_table(const struct kf_msg_cluster_status *st, FILE *out)
{
	static const char *const heads[] = {
		"WORKER", "HOST", ">PID", "LIVENESS", "STATE", ">CPU", ">HOST CPU", ">MEMORY",
		">SLOTS", ">JOB", ">PROGRESS", ">HEARTBEAT",
	};
	struct kf__ctl_table t;
	struct kf_strbuf sb = KF_STRBUF_INIT;

	kf__ctl_table_init(&t, heads, sizeof heads / sizeof heads[0]);
	for (size_t i = 0; i < st->n_workers; i++) {
		const struct kf_msg_worker_status *w = &st->workers[i];

		kf__ctl_table_cell(&t, "%s", w->worker_id);
		kf__ctl_table_cell(&t, "%s", w->host ? w->host : "-");
		kf__ctl_table_cell(&t, "%u", w->pid);
		kf__ctl_table_cell(&t, "%s", kf_worker_liveness_name(w->liveness));
		if (w->liveness == KF_WORKER_DEAD) {
			for (int k = 0; k < 4; k++)  /* state, CPU, host CPU, memory */
				kf__ctl_table_cell(&t, "-");
			kf__ctl_table_cell(&t, "-/%u", w->slots_total);
		} else {
			kf__ctl_table_cell(&t, "%s", kf_worker_state_name(w->state));
			kf__ctl_table_cell(&t, "%.0f%%", 100.0 * w->cpu_process);
			kf__ctl_table_cell(&t, "%.0f%%", 100.0 * w->cpu_host);
			kf_strbuf_reset(&sb);
			kf__ctl_add_bytes(&sb, w->rss_bytes);
			kf__ctl_table_cell(&t, "%s", sb.buf);
			kf__ctl_table_cell(&t, "%u/%u", w->slots_busy, w->slots_total);
		}
		if (w->job_id && w->liveness != KF_WORKER_DEAD) {
			kf__ctl_table_cell(&t, "%llu", (unsigned long long)w->job_id);
			kf__ctl_table_cell(&t, "%.0f%%", 100.0 * w->job_progress);
		} else {
			kf__ctl_table_cell(&t, "-");
			kf__ctl_table_cell(&t, "-");
		}
		kf_strbuf_reset(&sb);
		kf__ctl_add_duration(&sb, w->last_heartbeat_age_ms);
		kf__ctl_table_cell(&t, "%s ago", sb.buf);
	}
	kf__ctl_table_print(&t, out);
	kf__ctl_table_release(&t);
	kf_strbuf_release(&sb);
}
