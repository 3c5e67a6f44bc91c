/*
 * cliopt.h — the option loop the daemons share (broker, worker).
 *
 * Flags override the environment, which overrides defaults: the caller
 * applies the environment first, then runs this loop over argv.
 */
#ifndef KF_COMMON_CLIOPT_H
#define KF_COMMON_CLIOPT_H

#include "common/err.h"
#include "common/strbuf.h"

struct option;

/* Applies one option (getopt_long's `val`) with its argument (NULL for a
 * flag); on error returns it with one line appended to msg. */
typedef enum kf_err (*kf_cliopt_apply_fn)(void *ctx, int opt, const char *arg,
					  struct kf_strbuf *msg);

/* Runs getopt_long over argv with `opts` (which must map --help to 'h' and
 * --version to 'V'), calling apply for every other option. Sets *special to
 * 'h' or 'V' and stops when one of those is met, else to 0. An unknown
 * option, a missing value or an operand gives KF_EINVAL and one line in msg
 * ("unknown option '--x'; see --help"). Not thread-safe (getopt's globals). */
enum kf_err kf_cliopt_parse(int argc, char **argv, const struct option *opts,
			    kf_cliopt_apply_fn apply, void *ctx, int *special,
			    struct kf_strbuf *msg);

#endif
