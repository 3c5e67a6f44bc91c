/*
 * layout.h — a keyboard layout: which character sits on each of the 30 keys.
 *
 * A layout is written as a 30-character string, rows left to right, top row
 * first (QWERTY = "qwertyuiopasdfghjkl;zxcvbnm,./"). Supported characters are
 * printable ASCII except space and upper-case letters (the corpus is case
 * folded; shift is a corpus character of its own, never a key here).
 *
 * Named layouts (kf_layout_named) are all permutations of the same 30
 * characters — the 26 letters and ; , . / — so that any two can be compared
 * on one corpus and any one can start an optimization of the others' set.
 * Dvorak's top-left apostrophe is therefore written '/', the one main-block
 * character Dvorak lacks (on a real Dvorak board '/' sits right of 'l',
 * outside the 3×10 block).
 *
 * struct kf_layout is a plain value (copy it freely); functions here are
 * thread-safe.
 */
#ifndef KF_LAYOUT_LAYOUT_H
#define KF_LAYOUT_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "common/strbuf.h"
#include "layout/board.h"

#define KF_LAYOUT_KEYS KF_BOARD_KEYS

struct kf_layout {
	char keys[KF_LAYOUT_KEYS + 1]; /* keys[position]; NUL-terminated */
};

/* Parses a 30-character layout string. Checks, in this order: the length in
 * characters (KF_ELAYOUT_LEN; a multi-byte UTF-8 sequence counts as one),
 * each character (KF_ELAYOUT_CHAR: not printable ASCII, space or upper
 * case), duplicates (KF_ELAYOUT_DUP). `out` is untouched on error. When `why`
 * is not NULL, one lower-case line naming the problem is appended to it. */
enum kf_err kf_layout_parse(const char *text, struct kf_layout *out, struct kf_strbuf *why);

/* A named layout: qwerty, dvorak, colemak, colemak-dh, workman. KF_ENOENT
 * for an unknown name. */
enum kf_err kf_layout_named(const char *name, struct kf_layout *out);

/* The names kf_layout_named() knows, in a stable order; *count set. */
const char *const *kf_layout_names(size_t *count);

/* A name if it is one, else a layout string (kf_layout_parse's errors; for a
 * short string that is neither, KF_ELAYOUT_LEN and a `why` that lists the
 * names). */
enum kf_err kf_layout_resolve(const char *name_or_text, struct kf_layout *out,
			      struct kf_strbuf *why);

/* Position of character c, or -1 when it is not on the layout. */
int kf_layout_find(const struct kf_layout *layout, char c);

/* True when both layouts hold the same set of characters. */
bool kf_layout_same_set(const struct kf_layout *a, const struct kf_layout *b);

void kf_layout_swap(struct kf_layout *layout, int p, int q);

/* Appends the layout drawn as three rows of keys, indented per the board's
 * stagger, with a gap between the hands; each line starts with `indent`. */
void kf_layout_draw(const struct kf_layout *layout, const struct kf_board *board,
		    const char *indent, struct kf_strbuf *out);

#endif
