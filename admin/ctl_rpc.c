/*
 * ctl_rpc.c — keyforgectl's (and keyforge-admin's) requests to the broker: request ids, the auth
 * token, the reply checks, and the one-line causes that reach the user.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "admin/ctl.h"
#include "bus/sock.h"
#include "bus/tls.h"
#include "common/clock.h"

bool kf__ctl_load_token(struct kf__ctl *ctl)
{
	char buf[256];
	size_t n;
	FILE *f;

	free(ctl->token);
	ctl->token = NULL;
	ctl->token_why[0] = '\0';
	if (!ctl->token_file) {
		snprintf(ctl->token_why, sizeof ctl->token_why,
			 "no token file given (--token-file or KEYFORGE_TOKEN_FILE)");
		return false;
	}
	if (!(f = fopen(ctl->token_file, "r"))) {
		snprintf(ctl->token_why, sizeof ctl->token_why, "cannot read token file '%s': %s",
			 ctl->token_file, strerror(errno));
		return false;
	}
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n \t")] = '\0';
	if (!buf[0]) {
		snprintf(ctl->token_why, sizeof ctl->token_why, "token file '%s' is empty",
			 ctl->token_file);
		return false;
	}
	ctl->token = strdup(buf);
	return ctl->token != NULL;
}

void kf__ctl_msg_init(struct kf__ctl *ctl, struct kf_msg *msg, enum kf_msg_type type)
{
	if (!ctl->client_id) {
		if (getrandom(&ctl->client_id, sizeof ctl->client_id, 0) != sizeof ctl->client_id)
			ctl->client_id = kf_clock_wall_ns() ^ ((uint64_t)getpid() << 40);
		ctl->client_id |= 1; /* never 0: 0 means "no id" to the broker */
		snprintf(ctl->sender, sizeof ctl->sender, "%s-%d",
			 ctl->program ? ctl->program : "keyforgectl", (int)getpid());
	}
	kf_msg_init(msg, type, ctl->sender, ctl->seq + 1);
}

/* TLS for a tls+tcp:// url, from KEYFORGE_TLS_* (bus/tls.h); nothing else. */
static void tls_for(const char *url, struct kf_bus_opts *opts, struct kf_bus_tls_opts *tls)
{
	struct kf_bus_url_info info;

	if (kf_bus_url_parse(url, &info, NULL) == KF_OK && info.transport == KF_BUS_TLS_TCP) {
		kf_bus_tls_opts_from_env(tls);
		opts->tls = tls;
	}
}

static enum kf_err connect_rpc(struct kf__ctl *ctl, struct kf_strbuf *why)
{
	const char *url = kf_bus_addrs_get(&ctl->addrs, KF_BUS_RPC);
	struct kf_bus_tls_opts tls;
	struct kf_bus_opts opts = { 0 };

	if (ctl->rpc)
		return KF_OK;
	tls_for(url, &opts, &tls);
	return kf_rpc_client_new(&ctl->rpc, url, &opts, why);
}

enum kf_err kf__ctl_events_open(struct kf__ctl *ctl, int queue_len, struct kf_bus_sub **out,
	struct kf_strbuf *why)
{
	const char *url = kf_bus_addrs_get(&ctl->addrs, KF_BUS_EVENTS);
	struct kf_bus_tls_opts tls;
	struct kf_bus_opts opts = { .queue_len = queue_len };

	tls_for(url, &opts, &tls);
	return kf_bus_sub_new(out, KF_BUS_DIAL, url, &opts, why);
}

void kf__ctl_events_wait_dial(struct kf_bus_sub *sub, unsigned max_ms)
{
	for (unsigned i = 0; i < max_ms / 10 && !kf_bus_sock_peers(kf_bus_sub_sock(sub)); i++)
		nanosleep(&(struct timespec){ 0, 10000000L }, NULL);
}

/* Why a call timed out, in the user's words. */
static void explain_timeout(struct kf__ctl *ctl, struct kf_strbuf *why)
{
	const char *url = kf_bus_addrs_get(&ctl->addrs, KF_BUS_RPC);
	struct kf_strbuf d = KF_STRBUF_INIT;

	kf__ctl_add_duration(&d, (uint64_t)ctl->timeout_ms);
	if (kf_bus_sock_peers(kf_rpc_client_sock(ctl->rpc)) == 0)
		kf_strbuf_addf(why, "cannot reach the broker at %s (timed out after %s); is it "
			       "running? see ./keyforge status", url, d.buf);
	else
		kf_strbuf_addf(why, "the broker at %s did not answer within %s; it may be "
			       "overloaded (try --timeout)", url, d.buf);
	kf_strbuf_release(&d);
}

/* One attempt: encode, call, decode, match. KF__CTL_OK or a status. */
static int call_once(struct kf__ctl *ctl, struct kf_msg *req, struct kf_msg **rep,
	struct kf_strbuf *why)
{
	struct kf_rpc_call_opts opts = { .timeout_ms = ctl->timeout_ms };
	struct kf_strbuf bytes = KF_STRBUF_INIT, dwhy = KF_STRBUF_INIT;
	struct kf_msg_req *hdr = kf_msg_request_mut(req);
	nng_msg *reply = NULL;
	enum kf_err err;
	int status = KF__CTL_FAIL;

	hdr->id.client = ctl->client_id;
	hdr->id.seq = ++ctl->seq;
	hdr->auth_token = ctl->token;
	req->seq = ctl->seq;
	if ((err = kf_msg_encode(req, &bytes))) {
		kf_strbuf_addf(why, "cannot encode the %s request: %s", kf_msg_type_name(req->type),
			       kf_strerror(err));
		goto out;
	}
	err = kf_rpc_client_call(ctl->rpc, bytes.buf, bytes.len, &opts, &reply);
	if (err == KF_ETIMEDOUT) {
		explain_timeout(ctl, why);
		status = KF__CTL_UNAVAIL;
		goto out;
	}
	if (err) {
		kf_strbuf_addf(why, "request to the broker failed: %s", kf_strerror(err));
		goto out;
	}
	ctl->answered = true;
	err = kf_msg_decode(nng_msg_body(reply), nng_msg_len(reply), rep, &dwhy);
	if (err) {
		kf_strbuf_addf(why, "the broker's reply could not be read (%s%s%s); is %s a "
			       "KeyForge broker of protocol %d?", kf_strerror(err), dwhy.len ? ": " : "",
			       dwhy.buf, kf_bus_addrs_get(&ctl->addrs, KF_BUS_RPC), KF_PROTO_MAJOR);
		goto out;
	}
	status = KF__CTL_OK;
out:
	nng_msg_free(reply);
	kf_strbuf_release(&bytes);
	kf_strbuf_release(&dwhy);
	return status;
}

/* A decoded reply that is not the answer we want: say why. */
static int refused(struct kf__ctl *ctl, const struct kf_msg *req, const struct kf_msg *rep,
	struct kf_strbuf *why)
{
	const struct kf_msg_rep *h = kf_msg_reply(rep);
	enum kf_err st = h ? h->status : KF_EINTERNAL;
	const char *text = h && h->error && *h->error ? h->error : kf_strerror(st);

	if (rep->type != KF_MSG_ERROR_REP && rep->type != kf_msg_reply_type(req->type)) {
		kf_strbuf_addf(why, "the broker answered %s to %s; is %s a KeyForge broker?",
			       kf_msg_type_name(rep->type), kf_msg_type_name(req->type),
			       kf_bus_addrs_get(&ctl->addrs, KF_BUS_RPC));
		return KF__CTL_FAIL;
	}
	if (st == KF_EPERM) {
		kf_strbuf_addf(why, "not authorised (%s); pass the broker's token file with "
			       "--token-file or KEYFORGE_TOKEN_FILE (local hive: eval \"$(./keyforge "
			       "env)\")", ctl->token ? "the broker refused the token sent" :
			       ctl->token_why);
		return KF__CTL_FAIL;
	}
	kf_strbuf_addstr(why, text);
	return st == KF_EUNAVAIL ? KF__CTL_UNAVAIL : KF__CTL_FAIL;
}

int kf__ctl_call_quiet(struct kf__ctl *ctl, struct kf_msg *req, struct kf_msg **rep,
	struct kf_strbuf *why)
{
	const struct kf_msg_rep *h;
	enum kf_err err;
	int status;

	*rep = NULL;
	if ((err = connect_rpc(ctl, why)))
		return err == KF_EINVAL || err == KF_ERANGE ? KF__CTL_USAGE : KF__CTL_FAIL;
	for (int attempt = 0; attempt < 2; attempt++) {
		char *sent = ctl->token ? strdup(ctl->token) : NULL;
		bool again;

		if ((status = call_once(ctl, req, rep, why)) != KF__CTL_OK) {
			free(sent);
			return status;
		}
		h = kf_msg_reply(*rep);
		if ((*rep)->type == kf_msg_reply_type(req->type) && h && h->status == KF_OK) {
			free(sent);
			return KF__CTL_OK;
		}
		/* Refused for authorisation: the broker may have restarted with a
		 * fresh token since we read the file. */
		again = attempt == 0 && h && h->status == KF_EPERM && kf__ctl_load_token(ctl) &&
			(!sent || strcmp(sent, ctl->token) != 0);
		free(sent);
		if (!again)
			break;
		kf_msg_free(*rep);
		*rep = NULL;
	}
	status = refused(ctl, req, *rep, why);
	kf_msg_free(*rep);
	*rep = NULL;
	return status;
}

int kf__ctl_call(struct kf__ctl *ctl, struct kf_msg *req, struct kf_msg **rep)
{
	struct kf_strbuf why = KF_STRBUF_INIT;
	int status = kf__ctl_call_quiet(ctl, req, rep, &why);

	if (status != KF__CTL_OK)
		kf__ctl_fail(status, "%s", why.len ? why.buf : "request failed");
	kf_strbuf_release(&why);
	return status;
}

int kf__ctl_get_job(struct kf__ctl *ctl, uint64_t id, struct kf_msg **rep,
	struct kf_strbuf *why)
{
	struct kf_msg req;

	kf__ctl_msg_init(ctl, &req, KF_MSG_GET_REQ);
	req.get_req.job_id = id;
	return kf__ctl_call_quiet(ctl, &req, rep, why);
}

void kf__ctl_release(struct kf__ctl *ctl)
{
	kf_rpc_client_free(ctl->rpc);
	ctl->rpc = NULL;
	free(ctl->token);
	ctl->token = NULL;
}
