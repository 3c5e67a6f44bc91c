/*
 * score.h — the weighted cost of a layout (lower is better) and its
 * incremental change when two keys swap.
 *
 *   cost = Σ weight[s] · stat[s]                      (stats.h, in percent)
 *        + Σ_f finger[f] · finger_usage[f]
 *        + home_row · home_row_share
 *        + hand_balance · |left_hand − 50|
 *
 * with the trigram statistics restricted to the `trigrams` most frequent
 * trigrams whose three characters are on the layout (default 1000; the full
 * statistics of stats.h use every trigram). Default weights are in score.c
 * and docs/layout.md.
 *
 * Exactness: costs are integers in units of 1e-12 weight·percent
 * (KF_SCORE_UNIT). Every table entry is rounded once when the scorer is
 * built; after that the full score and the swap delta add the same integers,
 * so kf_score_delta() equals kf_score_full(after) − kf_score_full(before)
 * exactly, and an annealing run never drifts. The rounding (≤ 0.5e-12 per
 * table entry) is the only difference from Σ weight·stat in doubles.
 *
 * Ownership and threads: a scorer is immutable after kf_scorer_new(); share it
 * read-only between any number of threads, each with its own
 * struct kf_score_state.
 */
#ifndef KF_LAYOUT_SCORE_H
#define KF_LAYOUT_SCORE_H

#include <stdint.h>

#include "common/err.h"
#include "common/strbuf.h"
#include "layout/board.h"
#include "layout/corpus.h"
#include "layout/layout.h"

#define KF_SCORE_UNIT 1e-12      /* one integer cost unit, in weight·percent */
#define KF_WEIGHT_MAX 1000.0     /* |weight| limit: keeps sums far from int64 overflow */
#define KF_TRIGRAMS_DEFAULT 1000
#define KF_TRIGRAMS_MAX 1000000
#define KF_SCORE_TRIGRAM_CACHE 2048 /* scored trigrams a state caches (see below) */

struct kf_weights {
	double sfb, sfs, lsb, scissors;
	double alternate, alt_sfs, inroll, outroll, onehand, redirect, bad_redirect;
	double sfb_trigram, sft;
	double finger[KF_FINGER_COUNT]; /* per point of finger usage */
	double home_row;                /* per point of home-row share */
	double hand_balance;            /* per point of |left_hand − 50| */
	uint32_t trigrams;              /* trigrams scored; 0 = bigram statistics only */
};

void kf_weights_default(struct kf_weights *weights);

/* Applies overrides from text onto *weights (start from the defaults).
 * Two forms, told apart by the first non-blank character:
 *   name = value      one per line; '#' starts a comment; blank lines ignored
 *   {"name": value}   a flat JSON object of numbers
 * Names: the keys of kf_stat_descs() that are weights (sfb, sfs, lsb,
 * scissors, alternate, alt_sfs, inroll, outroll, onehand, redirect,
 * bad_redirect, sfb_trigram, sft, home_row), finger_lp .. finger_rp,
 * hand_balance, trigrams (an integer 0..KF_TRIGRAMS_MAX).
 * Errors: KF_EWEIGHTS (unknown name, bad number, |value| > KF_WEIGHT_MAX,
 * bad syntax) with one line in `why` naming the line or key; *weights may be
 * partly updated then. */
enum kf_err kf_weights_parse(struct kf_weights *weights, const char *text, struct kf_strbuf *why);

/* Reads a file and parses it as above; KF_EIO when it cannot be read. */
enum kf_err kf_weights_load(struct kf_weights *weights, const char *path, struct kf_strbuf *why);

/* Whether two sets of weights score alike: every weight equal (0 and -0
 * count as equal) and the same trigram count. */
bool kf_weights_equal(const struct kf_weights *a, const struct kf_weights *b);

/* Appends every weight as one JSON object ({"sfb":10,...}), which
 * kf_weights_parse() reads back exactly. */
void kf_weights_add_json(const struct kf_weights *weights, struct kf_strbuf *sb);

struct kf_scorer;

/* The layout as the scorer sees it: char index i is the character at
 * position i of the layout the scorer was built from. A plain value (about
 * 4 KiB): copy it with `=`. When the scorer scores at most
 * KF_SCORE_TRIGRAM_CACHE trigrams, the state also caches where each of them
 * falls in the trigram class table, which saves the delta three lookups per
 * trigram; with more, the delta computes it from `pos` (same result, slower). */
struct kf_score_state {
	uint8_t key[KF_LAYOUT_KEYS]; /* char index at each position */
	uint8_t pos[KF_LAYOUT_KEYS]; /* position of each char index */
	int64_t left;                /* Σ char weight on the left hand (hand balance) */
	int64_t cost;                /* cost of this state, in KF_SCORE_UNIT */
	uint16_t tri_idx[KF_SCORE_TRIGRAM_CACHE]; /* class-table index per trigram */
};

/* Builds the tables for one board, corpus, character set (the 30 characters
 * of `charset`, in any order) and weights. The corpus is read only during
 * the call. KF_ENOMEM, or KF_OK with *out owned by the caller. */
enum kf_err kf_scorer_new(const struct kf_board *board, const struct kf_corpus *corpus,
			  const struct kf_layout *charset, const struct kf_weights *weights,
			  struct kf_scorer **out);
void kf_scorer_free(struct kf_scorer *scorer);

const struct kf_weights *kf_scorer_weights(const struct kf_scorer *scorer);
/* Trigrams actually scored (≤ weights->trigrams). */
uint32_t kf_scorer_trigram_count(const struct kf_scorer *scorer);

/* Fills *state for a layout of the scorer's character set (full score
 * included). KF_EINVAL when the layout holds another set of characters. */
enum kf_err kf_score_state_init(const struct kf_scorer *scorer, const struct kf_layout *layout,
				struct kf_score_state *state);
/* The layout a state stands for. */
void kf_score_state_layout(const struct kf_scorer *scorer, const struct kf_score_state *state,
			   struct kf_layout *out);

/* Cost of the state's key arrangement, from scratch (ignores state->cost and
 * state->left). */
int64_t kf_score_full(const struct kf_scorer *scorer, const struct kf_score_state *state);

/* Cost change if the keys at positions p and q (p != q, both < 30) swapped;
 * the state is not changed. Exact (see above). */
int64_t kf_score_delta(const struct kf_scorer *scorer, const struct kf_score_state *state,
		       int p, int q);

/* Swaps p and q and adds `delta` (from kf_score_delta) to state->cost. */
void kf_score_apply(const struct kf_scorer *scorer, struct kf_score_state *state, int p, int q,
		    int64_t delta);

/* Cost in weight·percent. */
static inline double kf_score_value(int64_t cost)
{
	return (double)cost * KF_SCORE_UNIT;
}

/* Convenience: cost of a layout of the scorer's set, as a double. */
enum kf_err kf_score_layout(const struct kf_scorer *scorer, const struct kf_layout *layout,
			    double *cost);

#endif
