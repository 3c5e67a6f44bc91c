/* main.c — keyforge-worker: flags, logging, run, exit status. */
#include <stdio.h>
#include <unistd.h>

#include "bus/sock.h"
#include "common/daemon.h"
#include "kf_config.h"
#include "telemetry/log.h"
#include "worker/config.h"
#include "worker/worker.h"

#define TARGET "keyforge::worker"

int main(int argc, char **argv)
{
	struct kf_strbuf msg = KF_STRBUF_INIT;
	enum kf_worker_config_action action;
	struct kf_worker_config cfg;
	struct kf_worker *w = NULL;
	char host[256] = "";
	enum kf_err err;
	int status;

	/* Before any thread exists, so that every thread inherits the mask and
	 * the signals reach kf_worker_run's sigtimedwait only. */
	kf_daemon_block_signals();
	gethostname(host, sizeof host - 1);
	if (kf_worker_config_parse(&cfg, argc, argv, host, (long)getpid(), &action, &msg)) {
		fprintf(stderr, "keyforge-worker: %s\n", msg.buf);
		kf_strbuf_release(&msg);
		return 2;
	}
	if (action == KF_WORKER_HELP) {
		fputs(kf_worker_usage(), stdout);
		return 0;
	}
	if (action == KF_WORKER_VERSION) {
		printf("keyforge-worker %s\n", KF_VERSION);
		return 0;
	}
	if ((err = kf_log_init_from_env("keyforge-worker"))) {
		fprintf(stderr, "keyforge-worker: logging: %s\n", kf_strerror(err));
		return 1;
	}
	kf_log_install_fatal_handler("worker panic");
	KF_DEBUG(TARGET, "config loaded", KF_STR("worker_id", cfg.id), KF_U64("slots", cfg.slots),
		 KF_STR("corpus_dirs", cfg.corpus_dirs ? cfg.corpus_dirs : ""),
		 KF_STR("default_corpus", cfg.default_corpus ? cfg.default_corpus : ""),
		 KF_STR("on_term", kf_worker_on_term_name(cfg.on_term)),
		 KF_U64("lease_wait_ms", cfg.lease_wait_ms));
	if ((err = kf_worker_new(&w, &cfg, &msg))) {
		KF_ERROR(TARGET, "cannot start", KF_STR("error", msg.buf));
		kf_log_flush();
		fprintf(stderr, "keyforge-worker: error: %s\n", msg.buf);
		kf_strbuf_release(&msg);
		kf_log_shutdown();
		return 1;
	}
	kf_strbuf_release(&msg);
	status = kf_worker_run(w);
	kf_worker_free(w);
	if (kf_bus_stuck_closes())
		KF_WARN(TARGET, "sockets left open at exit",
			KF_U64("count", kf_bus_stuck_closes()),
			KF_STR("why", KF_BUS_STUCK_CLOSE_WHY));
	kf_log_shutdown();
	return status;
}
