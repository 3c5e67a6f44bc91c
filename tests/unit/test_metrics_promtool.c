/* `promtool check metrics` (Prometheus 2.42, Debian package prometheus) on the
 * Prometheus text exposition we generate. DESIGN.md §5 allows exactly two of
 * its lint warnings, for the names the contract fixes; anything else fails.
 * promtool reads only the text format 0.0.4 (OpenMetrics bodies are checked by
 * the golden files of test_expo). The path of promtool comes from $PROMTOOL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "telemetry/contract.h"
#include "telemetry/expo.h"
#include "telemetry/metrics.h"
#include "telemetry/process.h"
#include "test_metrics_sample.h"

static const char *const allowed[] = {
	"keyforge_score_latency_ns metric names should not contain abbreviated units",
	"keyforge_worker_heartbeats counter metrics should have \"_total\" suffix",
};
#define N_ALLOWED (sizeof allowed / sizeof allowed[0])

struct promtool_result {
	int status;             /* exit status, -1 when it did not exit */
	struct kf_strbuf out;   /* stdout and stderr */
};

/* Runs `promtool check metrics` on body; fills res. */
static void run_promtool(const char *body, struct promtool_result *res)
{
	const char *promtool = getenv("PROMTOOL");
	assert_non_null(promtool);
	char path[] = "/tmp/kf-promtool-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	size_t len = strlen(body);
	assert_int_equal(write(fd, body, len), (ssize_t)len);
	close(fd);

	struct kf_strbuf cmd = KF_STRBUF_INIT;
	kf_strbuf_addf(&cmd, "'%s' check metrics < '%s' 2>&1", promtool, path);
	FILE *p = popen(cmd.buf, "r");
	assert_non_null(p);
	res->out = (struct kf_strbuf)KF_STRBUF_INIT;
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, p)) > 0)
		kf_strbuf_add(&res->out, buf, n);
	int st = pclose(p);
	res->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	unlink(path);
	kf_strbuf_release(&cmd);
}

/* Every output line must be an allowed warning, and each must appear once
 * (which also proves promtool linted at all). Exit status 3 = lint problems. */
static void assert_only_allowed(const struct promtool_result *res)
{
	int seen[N_ALLOWED] = { 0 };
	char *copy = strdup(res->out.buf), *save = NULL;
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		size_t i = 0;
		while (i < N_ALLOWED && strcmp(line, allowed[i]) != 0)
			i++;
		if (i == N_ALLOWED)
			fail_msg("promtool: %s", line);
		seen[i]++;
	}
	free(copy);
	for (size_t i = 0; i < N_ALLOWED; i++)
		if (seen[i] != 1)
			fail_msg("expected once from promtool: %s (seen %d)", allowed[i], seen[i]);
	assert_int_equal(res->status, 3);
}

static void check_registry(struct kf_metrics *reg)
{
	struct kf_msnap snap = KF_MSNAP_INIT;
	struct kf_strbuf body = KF_STRBUF_INIT;
	assert_int_equal(kf_metrics_snapshot(reg, 0, &snap), KF_OK);
	assert_int_equal(kf_expo_write(&body, &snap, KF_EXPO_TEXT), KF_OK);
	struct promtool_result res;
	run_promtool(body.buf, &res);
	assert_only_allowed(&res);
	kf_strbuf_release(&res.out);
	kf_strbuf_release(&body);
	kf_msnap_release(&snap);
}

/* What every program exposes: the contract and the process metrics. */
static void test_program_metrics(void **state)
{
	(void)state;
	struct kf_metrics *reg;
	struct kf_contract_metrics m;
	assert_int_equal(kf_metrics_new(&reg), KF_OK);
	assert_int_equal(kf_contract_register(reg, &m), KF_OK);
	assert_int_equal(kf_process_register(reg), KF_OK);
	kf_histogram_observe_u64(m.score_latency_ns, 420);
	check_registry(reg);
	kf_metrics_free(reg);
}

/* Escaping, special floats, labelled histograms. */
static void test_sample_metrics(void **state)
{
	(void)state;
	struct kf_metrics *reg;
	assert_int_equal(kf_metrics_new(&reg), KF_OK);
	assert_int_equal(kf_test_metrics_sample(reg), KF_OK);
	check_registry(reg);
	kf_metrics_free(reg);
}

/* The harness itself: a clean body passes with status 0, a broken one fails. */
static void test_harness_detects(void **state)
{
	(void)state;
	struct promtool_result res;
	run_promtool("# HELP kf_ok_total Fine.\n# TYPE kf_ok_total counter\nkf_ok_total 1\n", &res);
	assert_int_equal(res.status, 0);
	assert_string_equal(res.out.buf, "");
	kf_strbuf_release(&res.out);
	/* An unescaped quote in a label value. */
	run_promtool("# HELP kf_bad Bad.\n# TYPE kf_bad gauge\nkf_bad{a=\"x\"y\"} 1\n", &res);
	assert_int_not_equal(res.status, 0);
	assert_int_not_equal(res.status, 3);
	kf_strbuf_release(&res.out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_harness_detects),
		cmocka_unit_test(test_program_metrics),
		cmocka_unit_test(test_sample_metrics),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
