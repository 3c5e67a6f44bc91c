/*
 * nasty_pub.c — a hostile publisher for keyforge-admin's test: it listens
 * with a PUB on URL (where the admin expects the broker's events) and, for
 * SECONDS, publishes what a broken or malicious peer could: random bytes,
 * valid topics over truncated or random envelopes, and well-formed log,
 * job and cluster events whose strings carry terminal escape sequences,
 * C1 controls and wide characters, and numbers at their limits (invalid UTF-8 only as raw bytes: proto refuses to encode it, and
 * the admin's decoder must drop it). The admin must keep running, draw
 * none of it as control sequences, and quit cleanly
 * (tests/tui/test_admin.sh).
 *
 *   nasty_pub URL SECONDS
 *   nasty_pub URL SECONDS swap
 *
 * With `swap` it publishes only well-formed cluster statuses of two
 * workers, swap-a and swap-b, whose rows change places in every one (as
 * they move when a worker is forgotten or the broker restarts): a key the
 * admin reads between two draws finds the other order, and must still act
 * on the worker the screen showed selected. A third, on the last row, has
 * an id of 200 characters ("swap-long-xxx...").
 *
 * Every message is built with proto/ (kf_msg_encode_pub) or is raw bytes;
 * nothing here is a stand-in for the broker: it is the bad input.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/pub.h"
#include "common/clock.h"
#include "proto/proto.h"

/* Valid UTF-8 (proto refuses anything else, both ways): ESC sequences that
 * would clear the screen and colour it, a C1 CSI (U+009B), a bell, wide
 * characters. */
#define MARK "nasty\033[2J\033[31mred\xc2\x9b" "1;1H\a\xe6\x97\xa5\xe6\x9c\xac-end"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void send_buf(struct kf_bus_pub *pub, const void *buf, size_t len)
{
	kf_bus_pub_send(pub, buf, len, NULL, 0);
}

/* The message alone (swap mode: no cut copy). */
static void send_buf_msg(struct kf_bus_pub *pub, const char *topic, const struct kf_msg *m)
{
	struct kf_strbuf sb = KF_STRBUF_INIT;

	if (kf_msg_encode_pub(topic, m, &sb) == KF_OK)
		send_buf(pub, sb.buf, sb.len);
	kf_strbuf_release(&sb);
}

static void send_msg(struct kf_bus_pub *pub, const char *topic, const struct kf_msg *m)
{
	struct kf_strbuf sb = KF_STRBUF_INIT;

	if (kf_msg_encode_pub(topic, m, &sb) == KF_OK) {
		send_buf(pub, sb.buf, sb.len);
		/* the same, cut short at a random point */
		if (sb.len > 2)
			send_buf(pub, sb.buf, 1 + (size_t)(next_rand() % (sb.len - 1)));
	}
	kf_strbuf_release(&sb);
}

static void send_log(struct kf_bus_pub *pub, uint64_t seq)
{
	static char big[16384];
	struct kf_msg_field fields[2] = {
		{ "job_id", { .kind = KF_VALUE_U64, .u64 = UINT64_MAX } },
		{ MARK, { .kind = KF_VALUE_STR, .str = MARK } },
	};
	struct kf_msg m;

	kf_msg_init(&m, KF_MSG_LOG, "nasty", seq);
	m.log.level = (enum kf_msg_level)(1 + seq % 5);
	m.log.target = MARK;
	m.log.message = MARK;
	m.log.fields = fields;
	m.log.n_fields = 2;
	send_msg(pub, "log.WARN.nasty", &m);
	/* a long one */
	memset(big, 'x', sizeof big - 1);
	memcpy(big, MARK, sizeof MARK - 1);
	m.log.message = big;
	m.log.n_fields = 0;
	send_msg(pub, "log.ERROR.nasty", &m);
}

static void send_status(struct kf_bus_pub *pub, uint64_t seq)
{
	static struct kf_msg_worker_status w[300];
	struct kf_msg m;

	for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
		w[i] = (struct kf_msg_worker_status){ .worker_id = i % 2 ? MARK : "w\033[H",
			.host = MARK, .pid = UINT32_MAX, .liveness = (enum kf_worker_liveness)(i % 3),
			.state = (enum kf_worker_state)(i % 3), .cpu_process = 1e300,
			.cpu_host = -1, .rss_bytes = UINT64_MAX, .slots_total = UINT32_MAX,
			.slots_busy = UINT32_MAX, .job_id = UINT64_MAX, .job_progress = -5,
			.last_heartbeat_age_ms = UINT64_MAX };
	kf_msg_init(&m, KF_MSG_CLUSTER_STATUS, "nasty", seq);
	m.cluster_status.workers = w;
	m.cluster_status.n_workers = sizeof w / sizeof w[0];
	for (int i = 0; i < KF_JOB_STATE_COUNT; i++)
		m.cluster_status.job_counts[i] = UINT64_MAX - (uint64_t)i;
	send_msg(pub, KF_TOPIC_STATUS_CLUSTER, &m);
}

/* Two workers, their order flipped at each call, and a long id last
 * (swap mode). */
static void send_swapped_status(struct kf_bus_pub *pub, uint64_t seq)
{
	static char long_id[201];
	struct kf_msg_worker_status w[3];
	struct kf_msg m;

	memset(long_id, 'x', sizeof long_id - 1);
	memcpy(long_id, "swap-long-", 10);
	w[2] = (struct kf_msg_worker_status){ .worker_id = long_id, .host = "swaphost",
		.pid = 102, .liveness = KF_WORKER_ALIVE, .state = KF_WORKER_IDLE, .slots_total = 1 };
	for (size_t i = 0; i < 2; i++)
		w[(i + seq) % 2] = (struct kf_msg_worker_status){
			.worker_id = i ? "swap-b" : "swap-a", .host = "swaphost",
			.pid = 100 + (uint32_t)i, .liveness = KF_WORKER_ALIVE,
			.state = KF_WORKER_IDLE, .slots_total = 1 };
	kf_msg_init(&m, KF_MSG_CLUSTER_STATUS, "swap", seq);
	m.cluster_status.workers = w;
	m.cluster_status.n_workers = 3;
	send_buf_msg(pub, KF_TOPIC_STATUS_CLUSTER, &m);
}

static void send_job_event(struct kf_bus_pub *pub, uint64_t seq)
{
	struct kf_msg m;

	kf_msg_init(&m, KF_MSG_JOB_EVENT, "nasty", seq);
	m.job_event.job_id = next_rand();
	m.job_event.state = (enum kf_job_state)(seq % KF_JOB_STATE_COUNT);
	m.job_event.worker_id = MARK;
	m.job_event.message = MARK;
	send_msg(pub, "job.1", &m);
}

static void send_garbage(struct kf_bus_pub *pub)
{
	static const char *const topics[] = { "log.INFO.x", "status.cluster", "job.7", "" };
	unsigned char buf[600];
	size_t tl, n = (size_t)(next_rand() % 500);

	const char *topic = topics[next_rand() % 4];

	tl = strlen(topic);
	memcpy(buf, topic, tl);
	buf[tl] = next_rand() % 2 ? '\0' : 'x';
	for (size_t i = tl + 1; i < tl + 1 + n; i++)
		buf[i] = (unsigned char)next_rand();
	send_buf(pub, buf, tl + 1 + n);
}

int main(int argc, char **argv)
{
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct kf_bus_pub *pub;
	uint64_t end, seq = 0;

	bool swap = argc == 4 && !strcmp(argv[3], "swap");

	if (argc != 3 && !swap) {
		fprintf(stderr, "usage: nasty_pub URL SECONDS [swap]\n");
		return 2;
	}
	if (kf_bus_pub_new(&pub, KF_BUS_LISTEN, argv[1], NULL, &why) != KF_OK) {
		fprintf(stderr, "nasty_pub: %s: %s\n", argv[1], why.buf);
		return 1;
	}
	end = kf_clock_mono_ns() + (uint64_t)atoi(argv[2]) * 1000000000ull;
	while (kf_clock_mono_ns() < end && swap) {
		send_swapped_status(pub, ++seq);
		nanosleep(&(struct timespec){ 0, 20000000L }, NULL);
	}
	while (kf_clock_mono_ns() < end && !swap) {
		send_log(pub, ++seq);
		send_status(pub, ++seq);
		send_job_event(pub, ++seq);
		for (int i = 0; i < 20; i++)
			send_garbage(pub);
		nanosleep(&(struct timespec){ 0, 20000000L }, NULL);  /* ~50 rounds a second */
	}
	kf_bus_pub_free(pub);
	kf_strbuf_release(&why);
	return 0;
}
