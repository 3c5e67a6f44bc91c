/*
 * ctl_workers.c — `keyforgectl workers`: the cluster request (workers the
 * broker tracks from their heartbeats, and job counts per state); and
 * `keyforgectl drain WORKER`.
 */
#include "admin/ctl.h"

#include <string.h>

#include "common/json.h"

static int on_opt(void *state, int id, const char *arg)
{
	(void)arg;
	if (id != 'j')
		return KF__CTL_USAGE;
	*(bool *)state = true;
	return -1;
}

static void counts_line(const uint64_t counts[KF_JOB_STATE_COUNT])
{
	printf("jobs:");
	for (int s = 0; s < KF_JOB_STATE_COUNT; s++)
		printf("%s %llu %s", s ? "," : "", (unsigned long long)counts[s],
		       kf_job_state_name((enum kf_job_state)s));
	printf("\n");
}

static int json(const struct kf_msg_cluster_status *st)
{
	struct kf_strbuf sb = KF_STRBUF_INIT;
	int status;

	kf_strbuf_addstr(&sb, "{\"workers\":[");
	for (size_t i = 0; i < st->n_workers; i++) {
		if (i)
			kf_strbuf_addch(&sb, ',');
		kf__ctl_json_worker(&sb, &st->workers[i]);
	}
	kf_strbuf_addstr(&sb, "],\"jobs\":");
	kf__ctl_json_counts(&sb, st->job_counts);
	kf_strbuf_addch(&sb, '}');
	status = kf__ctl_print_json(&sb);
	kf_strbuf_release(&sb);
	return status;
}

int kf__ctl_workers(struct kf__ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct kf_msg req, *rep = NULL;
	const struct kf_msg_cluster_status *st;
	bool as_json = false;
	int first, status;

	status = kf__ctl_getopt(ctl, kf__ctl_find("workers"), argc, argv, "", opts, on_opt,
				&as_json, &first);
	if (status >= 0)
		return status;
	if (first < argc) {
		fprintf(stderr, "keyforgectl workers: unexpected argument '%s'\n", argv[first]);
		return KF__CTL_USAGE;
	}
	kf__ctl_msg_init(ctl, &req, KF_MSG_CLUSTER_REQ);
	if ((status = kf__ctl_call(ctl, &req, &rep)))
		return status;
	st = &rep->cluster_rep.status;
	if (as_json) {
		status = json(st);
	} else {
		if (st->n_workers)
			kf__ctl_workers_table(st, stdout);
		else
			printf("no workers yet (start one: keyforge-worker, or ./keyforge up)\n");
		counts_line(st->job_counts);
	}
	kf_msg_free(rep);
	return status;
}

/* ---- drain ------------------------------------------------------------------------- */

int kf__ctl_drain(struct kf__ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct kf_msg req, *rep = NULL;
	const struct kf_msg_drain_rep *d;
	bool as_json = false;
	int first, status;

	status = kf__ctl_getopt(ctl, kf__ctl_find("drain"), argc, argv, "", opts, on_opt,
				&as_json, &first);
	if (status >= 0)
		return status;
	if (first + 1 != argc) {
		fprintf(stderr, "keyforgectl drain: %s; see keyforgectl drain --help\n",
			first >= argc ? "which worker? give its id" : "one worker at a time");
		return KF__CTL_USAGE;
	}
	kf__ctl_msg_init(ctl, &req, KF_MSG_DRAIN_REQ);
	req.drain_req.worker_id = argv[first];
	if ((status = kf__ctl_call(ctl, &req, &rep)))
		return status;
	d = &rep->drain_rep;
	if (as_json) {
		struct kf_strbuf sb = KF_STRBUF_INIT;

		kf_strbuf_addstr(&sb, "{\"worker\":");
		kf_json_add_string(&sb, argv[first], strlen(argv[first]));
		kf_strbuf_addf(&sb, ",\"liveness\":\"%s\",\"leases_ended\":%u}",
			       kf_worker_liveness_name(d->liveness), d->leases_ended);
		status = kf__ctl_print_json(&sb);
		kf_strbuf_release(&sb);
	} else {
		printf("worker %s (%s): drain sent; it takes no new job, finishes the jobs it "
		       "holds and exits\n", argv[first], kf_worker_liveness_name(d->liveness));
	}
	kf_msg_free(rep);
	return status;
}
