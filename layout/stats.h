/*
 * stats.h — statistics of a layout on a corpus (DESIGN.md §8).
 *
 * Every value is a percentage. Denominators:
 *  - bigram, skip-1 gram and trigram statistics: percent of ALL n-grams of
 *    their kind in the corpus (the corpus' own percentages summed), so
 *    n-grams with a character that is not on the layout (shift, digits,
 *    space, ...) count in the denominator and in no statistic;
 *  - finger usage, left-hand share and home-row share: percent of the corpus
 *    characters that are on the layout.
 *
 * Definitions (positions p ≠ q; "finger" per board.h):
 *  sfb        bigram of two different keys on the same finger
 *  sfs        skip-1 gram of two different keys on the same finger
 *  lsb        bigram on the index and middle finger of one hand whose key
 *             centres are >= 1.5 key widths apart horizontally
 *  scissors   bigram on adjacent fingers of one hand (pinky-ring, ring-middle,
 *             middle-index) whose rows are two apart, except a middle-index
 *             pair in which the index has the lower key
 *  Trigrams fall into exactly one class, decided in this order:
 *  repeat       a consecutive pair is one key twice ("ll" in "all"), with no
 *               same-finger pair of different keys: in no statistic
 *  sft          both consecutive pairs are same-finger pairs of different keys
 *  sfb_trigram  one consecutive pair is (exactly one)
 *  alternate    hands L R L or R L R; alt_sfs instead when the first and third
 *               key differ but share a finger
 *  inroll       one hand switch; the consecutive same-hand pair moves towards
 *               the thumb (finger rank rises); outroll: away from it
 *  onehand      three keys on one hand, three different fingers, monotonic
 *  redirect     three keys on one hand, the direction changes (including the
 *               same-finger-skipgram variant); bad_redirect is the subset in
 *               which no finger is an index finger, and is also in redirect
 *
 * Thread-safety: all functions are pure; share the inputs read-only.
 */
#ifndef KF_LAYOUT_STATS_H
#define KF_LAYOUT_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "common/strbuf.h"
#include "layout/board.h"
#include "layout/corpus.h"
#include "layout/layout.h"

/* Bigram relation of two positions (bit set). */
enum kf_pair_flag {
	KF_PAIR_SFB = 1 << 0,     /* same finger, different keys */
	KF_PAIR_LSB = 1 << 1,
	KF_PAIR_SCISSOR = 1 << 2,
};

enum kf_trigram_class {
	KF_TRI_REPEAT = 0,
	KF_TRI_SFT,
	KF_TRI_SFB,
	KF_TRI_ALTERNATE,
	KF_TRI_ALT_SFS,
	KF_TRI_INROLL,
	KF_TRI_OUTROLL,
	KF_TRI_ONEHAND,
	KF_TRI_REDIRECT,      /* has an index finger */
	KF_TRI_BAD_REDIRECT,  /* no index finger */
	KF_TRI_CLASS_COUNT
};

/* Bit set of enum kf_pair_flag for positions p, q (0 when p == q). */
unsigned kf_pair_flags(const struct kf_board *board, int p, int q);

/* Class of the trigram typed on positions p1, p2, p3. */
enum kf_trigram_class kf_trigram_classify(const struct kf_board *board, int p1, int p2, int p3);

/* Short lower-case name of a class ("alternate", ...); never NULL. */
const char *kf_trigram_class_name(enum kf_trigram_class cls);

struct kf_stats {
	double sfb, sfs, lsb, scissors;
	double alternate, alt_sfs, inroll, outroll, onehand, redirect, bad_redirect;
	double sfb_trigram, sft;
	double finger_usage[KF_FINGER_COUNT]; /* indexed by enum kf_finger */
	double left_hand, home_row;
};

/* One scalar statistic: its JSON key (DESIGN.md §10) and where it lives.
 * finger_usage is an array and not in this table. */
struct kf_stat_desc {
	const char *key;   /* "sfb", "alt_sfs", ... */
	const char *label; /* for tables: "SFB", "alt-SFS", ... */
	size_t offset;     /* of the double in struct kf_stats */
};

/* The scalar statistics in display order; *count set. */
const struct kf_stat_desc *kf_stat_descs(size_t *count);

static inline double kf_stat_get(const struct kf_stats *stats, const struct kf_stat_desc *d)
{
	return *(const double *)((const char *)stats + d->offset);
}

/* Computes every statistic over all n-grams of the corpus. A character of
 * the layout that the corpus never saw has frequency 0. Returns KF_OK, or
 * KF_ENOMEM (then *out is zeroed). */
enum kf_err kf_stats_compute(const struct kf_board *board, const struct kf_corpus *corpus,
			     const struct kf_layout *layout, struct kf_stats *out);

/* Appends the statistics as JSON members, without braces:
 * "sfb":1.2,...,"finger_usage":{"LP":7.1,...},"home_row":..,"left_hand":..
 * so that callers can embed them in their own objects. */
void kf_stats_add_json(const struct kf_stats *stats, struct kf_strbuf *sb);

/* Corpus char id of each layout position, or -1 when the corpus never saw the
 * character. Linear in the corpus' characters (no index needed). */
void kf_stats_map_layout(const struct kf_corpus *corpus, const struct kf_layout *layout,
			 int32_t id_of_pos[KF_LAYOUT_KEYS]);

#endif
