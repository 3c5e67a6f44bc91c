#include "common/err.h"

#include <stddef.h>

struct err_desc {
	enum kf_err code;
	const char *name;
	const char *text;
};

#define E(code, text) { code, #code, text }
static const struct err_desc err_table[] = {
	E(KF_OK, "success"),
	E(KF_ENOMEM, "out of memory"),
	E(KF_EINVAL, "invalid argument"),
	E(KF_EIO, "input/output error"),
	E(KF_ENOENT, "not found"),
	E(KF_EEXIST, "already exists"),
	E(KF_ERANGE, "value out of range"),
	E(KF_ETIMEDOUT, "timed out"),
	E(KF_ECANCELED, "canceled"),
	E(KF_EBUSY, "resource busy"),
	E(KF_EUNAVAIL, "service unavailable"),
	E(KF_EPERM, "not authorised"),
	E(KF_ESTATE, "invalid in the current state"),
	E(KF_ESTALE, "stale lease"),
	E(KF_EFULL, "queue full"),
	E(KF_EINTERNAL, "internal error"),
	E(KF_ETRUNCATED, "message truncated"),
	E(KF_ETRAILING, "trailing bytes after message"),
	E(KF_ETYPE, "field has the wrong type"),
	E(KF_ETOOBIG, "value exceeds size limit"),
	E(KF_ETOODEEP, "nesting too deep"),
	E(KF_EUTF8, "invalid utf-8"),
	E(KF_EMISSING, "required field missing"),
	E(KF_EUNKNOWNTYPE, "unknown message type"),
	E(KF_EVERSION, "unsupported protocol version"),
	E(KF_EMALFORMED, "malformed message"),
	E(KF_ETOPIC, "invalid topic"),
	E(KF_EFILTER, "invalid log filter directive"),
	E(KF_EMETRICNAME, "invalid metric or label name"),
	E(KF_ECARDINALITY, "too many series"),
	E(KF_ELAYOUT_LEN, "layout must have 30 characters"),
	E(KF_ELAYOUT_DUP, "layout has a duplicate character"),
	E(KF_ELAYOUT_CHAR, "layout has an unsupported character"),
	E(KF_ECORPUS, "malformed corpus"),
	E(KF_ECORPUS_VERSION, "unsupported corpus format version"),
	E(KF_EWEIGHTS, "malformed weights"),
	E(KF_ENNG, "messaging error"),
	E(KF_EDB, "database error"),
	E(KF_EMIGRATION, "migration error"),
	E(KF_EHTTP, "http server error"),
};
#undef E

static const struct err_desc *err_find(enum kf_err err)
{
	for (size_t i = 0; i < sizeof err_table / sizeof err_table[0]; i++)
		if (err_table[i].code == err)
			return &err_table[i];
	return NULL;
}

const char *kf_strerror(enum kf_err err)
{
	const struct err_desc *d = err_find(err);
	return d ? d->text : "unknown error";
}

const char *kf_errname(enum kf_err err)
{
	const struct err_desc *d = err_find(err);
	return d ? d->name : "KF_EUNKNOWN";
}
