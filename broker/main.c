/* main.c — keyforge-broker: flags, logging, run, exit status. */
#include <stdio.h>
#include <stdlib.h>

#include "common/daemon.h"
#include "broker/broker.h"
#include "broker/config.h"
#include "bus/sock.h"
#include "kf_config.h"
#include "telemetry/log.h"

#define TARGET "keyforge::broker"

int main(int argc, char **argv)
{
	struct kf_strbuf msg = KF_STRBUF_INIT;
	enum kf_broker_config_action action;
	struct kf_broker_config cfg;
	struct kf_broker *b = NULL;
	enum kf_err err;

	/* Before any thread exists, so that every thread inherits the mask and
	 * SIGTERM reaches the owner loop's signalfd only. */
	kf_daemon_block_signals();
	if (kf_broker_config_parse(&cfg, argc, argv, &action, &msg)) {
		fprintf(stderr, "keyforge-broker: %s\n", msg.buf);
		kf_strbuf_release(&msg);
		return 2;
	}
	if (action == KF_BROKER_HELP) {
		fputs(kf_broker_usage(), stdout);
		return 0;
	}
	if (action == KF_BROKER_VERSION) {
		printf("keyforge-broker %s\n", KF_VERSION);
		return 0;
	}
	if ((err = kf_log_init_from_env("keyforge-broker"))) {
		fprintf(stderr, "keyforge-broker: logging: %s\n", kf_strerror(err));
		return 1;
	}
	kf_log_install_fatal_handler("broker panic");
	KF_DEBUG(TARGET, "config loaded", KF_STR("rpc", kf_bus_addrs_get(&cfg.addrs, KF_BUS_RPC)),
		 KF_U64("ingest_rate", cfg.ingest_rate), KF_BOOL("worker_auth", cfg.worker_auth));
	if ((err = kf_broker_new(&b, &cfg, &msg))) {
		KF_ERROR(TARGET, "cannot start", KF_STR("error", msg.len ? msg.buf : kf_strerror(err)));
		kf_log_flush();
		/* Said once: by the log line, or here when the filter hides it. */
		if (!kf_log_enabled(KF_LEVEL_ERROR, TARGET))
			fprintf(stderr, "keyforge-broker: error: %s\n",
				msg.len ? msg.buf : kf_strerror(err));
		kf_strbuf_release(&msg);
		return 1;
	}
	kf_strbuf_release(&msg);
	err = kf_broker_run(b);
	kf_broker_free(b);
	if (kf_bus_stuck_closes())
		KF_WARN(TARGET, "sockets left open at exit",
			KF_U64("count", kf_bus_stuck_closes()),
			KF_STR("why", KF_BUS_STUCK_CLOSE_WHY));
	if (err)
		KF_ERROR(TARGET, "stopped on a fatal error", KF_ERR(err));
	else
		KF_INFO(TARGET, "server stopped");
	kf_log_shutdown();
	return err ? 1 : 0;
}
