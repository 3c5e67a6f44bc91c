/*
 * stats.c — bigram relations, trigram classes and the statistics of a layout.
 *
 * The definitions are in stats.h. kf_pair_flags and kf_trigram_classify are
 * the single source of truth: the scorer (score.c) tabulates them, so the
 * score and the statistics cannot drift apart.
 */
#include "layout/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"

#define LSB_MIN_DISTANCE 1.5

static bool is_scissor(const struct kf_board *board, int p, int q)
{
	enum kf_finger fp = board->finger[p], fq = board->finger[q];
	int rp = kf_finger_rank(fp), rq = kf_finger_rank(fq);

	if (kf_finger_hand(fp) != kf_finger_hand(fq) || abs(rp - rq) != 1)
		return false;
	if (abs((int)board->row[p] - (int)board->row[q]) != 2)
		return false;
	/* Middle-index with the index on the lower row is a natural hand shape. */
	if (kf_finger_is_index(fp) && board->row[p] > board->row[q])
		return false;
	if (kf_finger_is_index(fq) && board->row[q] > board->row[p])
		return false;
	return true;
}

static bool is_lsb(const struct kf_board *board, int p, int q)
{
	enum kf_finger fp = board->finger[p], fq = board->finger[q];
	int rp = kf_finger_rank(fp), rq = kf_finger_rank(fq);

	if (kf_finger_hand(fp) != kf_finger_hand(fq))
		return false;
	/* index (rank 3) with middle (rank 2) */
	if (!((rp == 3 && rq == 2) || (rp == 2 && rq == 3)))
		return false;
	return fabs(board->x[p] - board->x[q]) >= LSB_MIN_DISTANCE;
}

unsigned kf_pair_flags(const struct kf_board *board, int p, int q)
{
	unsigned flags = 0;

	if (p == q)
		return 0;
	if (board->finger[p] == board->finger[q])
		flags |= KF_PAIR_SFB;
	if (is_lsb(board, p, q))
		flags |= KF_PAIR_LSB;
	if (is_scissor(board, p, q))
		flags |= KF_PAIR_SCISSOR;
	return flags;
}

static enum kf_trigram_class classify_one_hand(const struct kf_board *board, int p1, int p2,
					       int p3)
{
	enum kf_finger f1 = board->finger[p1], f2 = board->finger[p2], f3 = board->finger[p3];
	int r1 = kf_finger_rank(f1), r2 = kf_finger_rank(f2), r3 = kf_finger_rank(f3);

	if ((r1 < r2 && r2 < r3) || (r1 > r2 && r2 > r3))
		return KF_TRI_ONEHAND;
	if (kf_finger_is_index(f1) || kf_finger_is_index(f2) || kf_finger_is_index(f3))
		return KF_TRI_REDIRECT;
	return KF_TRI_BAD_REDIRECT;
}

static enum kf_trigram_class classify_roll(const struct kf_board *board, int from, int to)
{
	int r_from = kf_finger_rank(board->finger[from]), r_to = kf_finger_rank(board->finger[to]);

	return r_to > r_from ? KF_TRI_INROLL : KF_TRI_OUTROLL;
}

enum kf_trigram_class kf_trigram_classify(const struct kf_board *board, int p1, int p2, int p3)
{
	enum kf_finger f1 = board->finger[p1], f2 = board->finger[p2], f3 = board->finger[p3];
	enum kf_hand h1 = kf_finger_hand(f1), h2 = kf_finger_hand(f2), h3 = kf_finger_hand(f3);
	int sfb_pairs = (f1 == f2 && p1 != p2) + (f2 == f3 && p2 != p3);

	if (sfb_pairs == 2)
		return KF_TRI_SFT;
	if (sfb_pairs == 1)
		return KF_TRI_SFB;
	if (p1 == p2 || p2 == p3)
		return KF_TRI_REPEAT;
	/* From here on consecutive keys are on different fingers. */
	if (h1 != h2 && h2 != h3)
		return f1 == f3 && p1 != p3 ? KF_TRI_ALT_SFS : KF_TRI_ALTERNATE;
	if (h1 == h2 && h2 != h3)
		return classify_roll(board, p1, p2);
	if (h1 != h2 && h2 == h3)
		return classify_roll(board, p2, p3);
	return classify_one_hand(board, p1, p2, p3);
}

const char *kf_trigram_class_name(enum kf_trigram_class cls)
{
	static const char *const names[KF_TRI_CLASS_COUNT] = {
		[KF_TRI_REPEAT] = "repeat",
		[KF_TRI_SFT] = "sft",
		[KF_TRI_SFB] = "sfb_trigram",
		[KF_TRI_ALTERNATE] = "alternate",
		[KF_TRI_ALT_SFS] = "alt_sfs",
		[KF_TRI_INROLL] = "inroll",
		[KF_TRI_OUTROLL] = "outroll",
		[KF_TRI_ONEHAND] = "onehand",
		[KF_TRI_REDIRECT] = "redirect",
		[KF_TRI_BAD_REDIRECT] = "bad_redirect",
	};

	if ((unsigned)cls >= KF_TRI_CLASS_COUNT)
		return "?";
	return names[cls];
}

#define STAT(key, label, field) { key, label, offsetof(struct kf_stats, field) }

/* Display and JSON order: DESIGN.md §10's list, then the extra trigram
 * classes, then the shares (finger usage is printed apart). */
static const struct kf_stat_desc stat_descs[] = {
	STAT("sfb", "SFB", sfb),
	STAT("sfs", "SFS", sfs),
	STAT("lsb", "LSB", lsb),
	STAT("scissors", "scissors", scissors),
	STAT("alternate", "alternate", alternate),
	STAT("alt_sfs", "alt-SFS", alt_sfs),
	STAT("inroll", "inroll", inroll),
	STAT("outroll", "outroll", outroll),
	STAT("onehand", "onehand", onehand),
	STAT("redirect", "redirect", redirect),
	STAT("bad_redirect", "bad redirect", bad_redirect),
	STAT("sfb_trigram", "SFB trigram", sfb_trigram),
	STAT("sft", "SFT", sft),
	STAT("home_row", "home row", home_row),
	STAT("left_hand", "left hand", left_hand),
};

const struct kf_stat_desc *kf_stat_descs(size_t *count)
{
	*count = sizeof(stat_descs) / sizeof(stat_descs[0]);
	return stat_descs;
}

void kf_stats_map_layout(const struct kf_corpus *corpus, const struct kf_layout *layout,
			 int32_t id_of_pos[KF_LAYOUT_KEYS])
{
	for (int p = 0; p < KF_LAYOUT_KEYS; p++) {
		id_of_pos[p] = -1;
		for (uint32_t id = 0; id < corpus->nchars; id++) {
			if (corpus->codepoints[id] == (uint32_t)(unsigned char)layout->keys[p]) {
				id_of_pos[p] = (int32_t)id;
				break;
			}
		}
	}
}

static void add_bigram_stats(const struct kf_board *board, const struct kf_corpus *corpus,
			     const int8_t *pos_of_id, struct kf_stats *st)
{
	for (size_t i = 0; i < corpus->nbigrams; i++) {
		const struct kf_ngram2 *g = &corpus->bigrams[i];
		int p, q;
		unsigned flags;

		if (g->a >= corpus->nchars || g->b >= corpus->nchars)
			continue;
		p = pos_of_id[g->a];
		q = pos_of_id[g->b];
		if (p < 0 || q < 0)
			continue;
		flags = kf_pair_flags(board, p, q);
		st->sfb += flags & KF_PAIR_SFB ? g->freq : 0.0;
		st->lsb += flags & KF_PAIR_LSB ? g->freq : 0.0;
		st->scissors += flags & KF_PAIR_SCISSOR ? g->freq : 0.0;
	}
	for (size_t i = 0; i < corpus->nskipgrams; i++) {
		const struct kf_ngram2 *g = &corpus->skipgrams[i];
		int p, q;

		if (g->a >= corpus->nchars || g->b >= corpus->nchars)
			continue;
		p = pos_of_id[g->a];
		q = pos_of_id[g->b];
		if (p >= 0 && q >= 0 && (kf_pair_flags(board, p, q) & KF_PAIR_SFB))
			st->sfs += g->freq;
	}
}

static void add_trigram_stats(const struct kf_board *board, const struct kf_corpus *corpus,
			      const int8_t *pos_of_id, struct kf_stats *st)
{
	double by_class[KF_TRI_CLASS_COUNT] = { 0 };

	for (size_t i = 0; i < corpus->ntrigrams; i++) {
		const struct kf_ngram3 *g = &corpus->trigrams[i];
		int p1, p2, p3;

		if (g->a >= corpus->nchars || g->b >= corpus->nchars || g->c >= corpus->nchars)
			continue;
		p1 = pos_of_id[g->a];
		p2 = pos_of_id[g->b];
		p3 = pos_of_id[g->c];
		if (p1 < 0 || p2 < 0 || p3 < 0)
			continue;
		by_class[kf_trigram_classify(board, p1, p2, p3)] += g->freq;
	}
	st->sft = by_class[KF_TRI_SFT];
	st->sfb_trigram = by_class[KF_TRI_SFB];
	st->alternate = by_class[KF_TRI_ALTERNATE];
	st->alt_sfs = by_class[KF_TRI_ALT_SFS];
	st->inroll = by_class[KF_TRI_INROLL];
	st->outroll = by_class[KF_TRI_OUTROLL];
	st->onehand = by_class[KF_TRI_ONEHAND];
	st->bad_redirect = by_class[KF_TRI_BAD_REDIRECT];
	st->redirect = by_class[KF_TRI_REDIRECT] + by_class[KF_TRI_BAD_REDIRECT];
}

static void add_char_stats(const struct kf_board *board, const struct kf_corpus *corpus,
			   const int32_t *id_of_pos, struct kf_stats *st)
{
	double total = 0, left = 0, home = 0;

	for (int p = 0; p < KF_LAYOUT_KEYS; p++) {
		double f = id_of_pos[p] >= 0 ? corpus->chars[id_of_pos[p]] : 0.0;

		total += f;
		st->finger_usage[board->finger[p]] += f;
		left += kf_finger_hand(board->finger[p]) == KF_HAND_LEFT ? f : 0.0;
		home += board->row[p] == KF_BOARD_HOME_ROW ? f : 0.0;
	}
	if (total <= 0) {
		memset(st->finger_usage, 0, sizeof(st->finger_usage));
		return;
	}
	for (int f = 0; f < KF_FINGER_COUNT; f++)
		st->finger_usage[f] *= 100.0 / total;
	st->left_hand = left * 100.0 / total;
	st->home_row = home * 100.0 / total;
}

enum kf_err kf_stats_compute(const struct kf_board *board, const struct kf_corpus *corpus,
			     const struct kf_layout *layout, struct kf_stats *out)
{
	int32_t id_of_pos[KF_LAYOUT_KEYS];
	int8_t *pos_of_id;

	memset(out, 0, sizeof(*out));
	pos_of_id = malloc(corpus->nchars ? corpus->nchars : 1);
	if (!pos_of_id)
		return KF_ENOMEM;
	memset(pos_of_id, -1, corpus->nchars);
	kf_stats_map_layout(corpus, layout, id_of_pos);
	for (int p = 0; p < KF_LAYOUT_KEYS; p++)
		if (id_of_pos[p] >= 0)
			pos_of_id[id_of_pos[p]] = (int8_t)p;
	add_bigram_stats(board, corpus, pos_of_id, out);
	add_trigram_stats(board, corpus, pos_of_id, out);
	add_char_stats(board, corpus, id_of_pos, out);
	free(pos_of_id);
	return KF_OK;
}

void kf_stats_add_json(const struct kf_stats *stats, struct kf_strbuf *sb)
{
	size_t n;
	const struct kf_stat_desc *descs = kf_stat_descs(&n);

	for (size_t i = 0; i < n; i++) {
		if (i)
			kf_strbuf_addch(sb, ',');
		kf_json_add_cstr(sb, descs[i].key);
		kf_strbuf_addch(sb, ':');
		kf_json_add_double(sb, kf_stat_get(stats, &descs[i]));
	}
	kf_strbuf_addstr(sb, ",\"finger_usage\":{");
	for (int f = 0; f < KF_FINGER_COUNT; f++) {
		if (f)
			kf_strbuf_addch(sb, ',');
		kf_json_add_cstr(sb, kf_finger_name((enum kf_finger)f));
		kf_strbuf_addch(sb, ':');
		kf_json_add_double(sb, stats->finger_usage[f]);
	}
	kf_strbuf_addch(sb, '}');
}
