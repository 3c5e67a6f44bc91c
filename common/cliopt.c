#include "common/cliopt.h"

#include <getopt.h>

enum kf_err kf_cliopt_parse(int argc, char **argv, const struct option *opts,
			    kf_cliopt_apply_fn apply, void *ctx, int *special,
			    struct kf_strbuf *msg)
{
	enum kf_err err;
	int c;

	*special = 0;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":hV", opts, NULL)) != -1) {
		if (c == 'h' || c == 'V') {
			*special = c;
			return KF_OK;
		}
		if (c == '?' || c == ':') {
			kf_strbuf_addf(msg, "%s '%s'; see --help",
				       c == ':' ? "missing value for option" : "unknown option",
				       argv[optind - 1]);
			return KF_EINVAL;
		}
		if ((err = apply(ctx, c, optarg, msg)))
			return err;
	}
	if (optind < argc) {
		kf_strbuf_addf(msg, "unexpected argument '%s'; see --help", argv[optind]);
		return KF_EINVAL;
	}
	return KF_OK;
}
