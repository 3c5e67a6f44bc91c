/*
 * err.h — the one error enum of KeyForge Hive.
 *
 * Rules:
 *  - 0 is success; every fallible function returns enum kf_err and passes
 *    results through out-parameters.
 *  - Codes are grouped by the component that first needed them, but any
 *    component may return any code whose meaning fits.
 *  - Codes are stable within a release: they appear in RPC error replies
 *    (proto/) and in test assertions. Append new codes at the end of a group.
 */
#ifndef KF_COMMON_ERR_H
#define KF_COMMON_ERR_H

enum kf_err {
	KF_OK = 0,

	/* generic */
	KF_ENOMEM = 1,     /* allocation failed */
	KF_EINVAL = 2,     /* invalid argument */
	KF_EIO = 3,        /* read or write failed; errno has the cause */
	KF_ENOENT = 4,     /* no such file, job, worker, ... */
	KF_EEXIST = 5,     /* already exists */
	KF_ERANGE = 6,     /* value out of range */
	KF_ETIMEDOUT = 7,  /* deadline passed */
	KF_ECANCELED = 8,  /* cancelled cooperatively */
	KF_EBUSY = 9,      /* resource in use (address already bound, ...) */
	KF_EUNAVAIL = 10,  /* dependency unavailable (database away, ...) */
	KF_EPERM = 11,     /* not authorised */
	KF_ESTATE = 12,    /* operation not valid in the current state */
	KF_ESTALE = 13,    /* stale lease token or attempt */
	KF_EFULL = 14,     /* queue or table full; item dropped */
	KF_EINTERNAL = 15, /* a bug: an invariant did not hold */

	/* proto/: decoding untrusted bytes */
	KF_ETRUNCATED = 100,    /* input ends inside a value */
	KF_ETRAILING = 101,     /* bytes left after the envelope */
	KF_ETYPE = 102,         /* a field has the wrong msgpack type */
	KF_ETOOBIG = 103,       /* a string, array or message exceeds its limit */
	KF_ETOODEEP = 104,      /* nesting deeper than the limit */
	KF_EUTF8 = 105,         /* invalid UTF-8 where text is required */
	KF_EMISSING = 106,      /* a required field is absent */
	KF_EUNKNOWNTYPE = 107,  /* message type this build does not know */
	KF_EVERSION = 108,      /* newer major protocol version */
	KF_EMALFORMED = 109,    /* bytes are not valid msgpack */
	KF_ETOPIC = 110,        /* pub/sub topic prefix missing or invalid */

	/* telemetry/ */
	KF_EFILTER = 200,       /* invalid KEYFORGE_LOG directive */
	KF_EMETRICNAME = 201,   /* invalid metric or label name */
	KF_ECARDINALITY = 202,  /* too many series for one metric */

	/* layout/ */
	KF_ELAYOUT_LEN = 300,   /* layout string is not 30 characters */
	KF_ELAYOUT_DUP = 301,   /* layout has a character twice */
	KF_ELAYOUT_CHAR = 302,  /* layout has an unsupported character */
	KF_ECORPUS = 303,       /* corpus file malformed */
	KF_ECORPUS_VERSION = 304, /* compact corpus of another format version */
	KF_EWEIGHTS = 305,      /* weights file malformed */

	/* bus/ and programs */
	KF_ENNG = 400,          /* nng call failed; the log event names it */
	KF_EDB = 401,           /* database error; the log event has the SQL state */
	KF_EMIGRATION = 402,    /* migration checksum mismatch or failure */
	KF_EHTTP = 403,         /* HTTP server could not start */
};

/* Returns a short, lower-case, static description; never NULL. */
const char *kf_strerror(enum kf_err err);

/* Returns the enum name ("KF_ETRUNCATED"), for logs and JSON; never NULL. */
const char *kf_errname(enum kf_err err);

#endif
