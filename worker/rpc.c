/* rpc.c — request ids, the token, calls and the hello bookkeeping. */
#include "worker/rpc.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/daemon.h"
#include "common/clock.h"
#include "telemetry/log.h"

#define TARGET "keyforge::worker::rpc"

enum kf_err kf__token_parse(const char *text, size_t len, char out[KF__TOKEN_MAX + 1])
{
	size_t b = 0, e;

	while (b < len && (text[b] == ' ' || text[b] == '\t'))
		b++;
	e = b;
	while (e < len && text[e] != '\n' && text[e] != '\r' && text[e] != '\0')
		e++;
	while (e > b && (text[e - 1] == ' ' || text[e - 1] == '\t'))
		e--;
	if (e == b || e - b > KF__TOKEN_MAX)
		return KF_EINVAL;
	memcpy(out, text + b, e - b);
	out[e - b] = '\0';
	return KF_OK;
}

static enum kf_err read_token(const char *path, char out[KF__TOKEN_MAX + 1])
{
	char buf[KF__TOKEN_MAX + 64];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? KF_ENOENT : KF_EIO;
	n = read(fd, buf, sizeof buf);
	close(fd);
	if (n < 0)
		return KF_EIO;
	return kf__token_parse(buf, (size_t)n, out);
}

enum kf_err kf__rpc_reload_token(struct kf__rpc *r, bool *changed)
{
	char tok[KF__TOKEN_MAX + 1];
	enum kf_err err;

	if (changed)
		*changed = false;
	if (!r->token_file)
		return KF_ENOENT;
	err = read_token(r->token_file, tok);
	pthread_mutex_lock(&r->token_mu);
	if (!err) {
		if (changed)
			*changed = strcmp(tok, r->token) != 0;
		memcpy(r->token, tok, sizeof tok);
		r->token_warned = false;
	}
	pthread_mutex_unlock(&r->token_mu);
	return err;
}

enum kf_err kf__rpc_init(struct kf__rpc *r, const char *url, const struct kf_bus_opts *opts,
	const char *sender, const char *token_file, struct kf_strbuf *why)
{
	enum kf_err err;

	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->token_mu, NULL);
	r->client_id = kf_random_u64_nonzero();
	r->sender = sender;
	r->token_file = token_file;
	atomic_store(&r->need_hello, true);
	if ((err = kf_rpc_client_new(&r->cli, url, opts, why))) {
		pthread_mutex_destroy(&r->token_mu);
		return err;
	}
	if (token_file && (err = kf__rpc_reload_token(r, NULL)))
		KF_WARN(TARGET, "token file not readable yet; requests go without a token",
			KF_STR("path", token_file), KF_ERR(err));
	return KF_OK;
}

void kf__rpc_release(struct kf__rpc *r)
{
	kf_rpc_client_free(r->cli);
	r->cli = NULL;
	pthread_mutex_destroy(&r->token_mu);
}

struct kf_msg_request_id kf__rpc_next_id(struct kf__rpc *r)
{
	return (struct kf_msg_request_id){ .client = r->client_id,
		.seq = atomic_fetch_add(&r->seq, 1) + 1 };
}

/* The token is copied into the message's own storage by the caller's
 * encode; keep it in a thread-local copy so that a reload cannot change it
 * under an encoder. */
static _Thread_local char stamped_token[KF__TOKEN_MAX + 1];

void kf__rpc_stamp(struct kf__rpc *r, struct kf_msg *req, const struct kf_msg_request_id *id)
{
	struct kf_msg_req *h = kf_msg_request_mut(req);

	req->sender = r->sender;
	h->id = id ? *id : kf__rpc_next_id(r);
	pthread_mutex_lock(&r->token_mu);
	memcpy(stamped_token, r->token, sizeof stamped_token);
	pthread_mutex_unlock(&r->token_mu);
	h->auth_token = stamped_token[0] ? stamped_token : NULL;
}

static bool transport_error(enum kf_err err)
{
	return err == KF_ETIMEDOUT || err == KF_ECANCELED || err == KF_EUNAVAIL ||
	       err == KF_ENNG || err == KF_ETOOBIG;
}

enum kf_err kf__rpc_call(struct kf__rpc *r, const struct kf_msg *req, nng_duration timeout_ms,
	nng_duration resend_ms, struct kf_msg **rep)
{
	struct kf_rpc_call_opts o = { .timeout_ms = timeout_ms, .resend_ms = resend_ms };
	struct kf_strbuf sb = KF_STRBUF_INIT;
	const struct kf_msg_rep *h;
	nng_msg *m = NULL;
	enum kf_err err;

	*rep = NULL;
	if ((err = kf_msg_encode(req, &sb))) {
		kf_strbuf_release(&sb);
		return err;
	}
	err = kf_rpc_client_call(r->cli, sb.buf, sb.len, &o, &m);
	kf_strbuf_release(&sb);
	if (err) {
		if (transport_error(err))
			atomic_store(&r->need_hello, true);
		return err;
	}
	err = kf_msg_decode(nng_msg_body(m), nng_msg_len(m), rep, NULL);
	nng_msg_free(m);
	if (err)
		return KF_EMALFORMED;
	h = kf_msg_reply(*rep);
	if ((*rep)->type != KF_MSG_ERROR_REP &&
	    ((*rep)->type != kf_msg_reply_type(req->type) || !h ||
	     h->id.seq != kf_msg_request(req)->id.seq)) {
		kf_msg_free(*rep);
		*rep = NULL;
		return KF_EMALFORMED;
	}
	return KF_OK;
}

uint64_t kf__rpc_pipes(struct kf__rpc *r)
{
	struct kf_bus_sock_stats st;

	kf_bus_sock_stats(kf_rpc_client_sock(r->cli), &st);
	return st.pipes_added;
}

bool kf__rpc_need_hello(struct kf__rpc *r)
{
	return atomic_load(&r->need_hello) || kf__rpc_pipes(r) != atomic_load(&r->hello_pipes);
}

void kf__rpc_set_need_hello(struct kf__rpc *r)
{
	atomic_store(&r->need_hello, true);
}

void kf__rpc_hello_done(struct kf__rpc *r, uint64_t pipes_at_start)
{
	uint64_t now = kf__rpc_pipes(r);

	/* A reconnection during the hello itself went to the new broker
	 * (REQ resends on the new pipe): the hello counts for it. */
	atomic_store(&r->hello_pipes, now > pipes_at_start ? now : pipes_at_start);
	atomic_store(&r->need_hello, false);
}
